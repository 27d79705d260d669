// Package registrytest runs an in-memory OCI registry for tests and signs
// images in it with the cosign library.
//
// The registry is go-containerregistry's pkg/registry on an httptest server
// bound to 127.0.0.1, behind an http.Handler that counts requests and
// injects faults. Requests made by this package's own helpers (pushing,
// signing) are neither counted nor faulted, so counts and faults concern
// only the code under test.
//
//	reg := registrytest.New(t)
//	d := reg.PushImage(t, "team/app", "v1")
//	signer := registrytest.NewSigner(t)
//	signer.Sign(t, d, registrytest.Classic)
//	reg.ResetRequests()
//	... verify reg.Host + "/team/app:v1" ...
//	if got := reg.Requests(); got > 4 { ... }
package registrytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// setupHeader marks requests from this package's helpers.
const setupHeader = "X-Registrytest-Setup"

// Registry is a running in-memory registry. Safe for concurrent use.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string

	srv      *httptest.Server
	handler  http.Handler      // what srv serves: counting, faults, registry
	setup    http.RoundTripper // own transport: httptest.Server.Close resets http.DefaultTransport's connections
	requests atomic.Int64
	mu       sync.Mutex
	log      []string
	fault    Fault
}

// Option configures New.
type Option func(*config)

type config struct {
	referrers bool
	tls       bool
	cert      *tls.Certificate
}

// WithoutReferrersAPI turns off the OCI 1.1 referrers endpoint (it then
// answers 404, like distribution 2.8), so bundles are found through the
// referrers fallback tag sha256-<hex>. Default: the API is on.
func WithoutReferrersAPI() Option { return func(c *config) { c.referrers = false } }

// WithTLS serves HTTPS with cert, or with net/http/httptest's own
// certificate (for 127.0.0.1, ::1 and example.com) when cert is nil.
// Certificate returns the served certificate; the helpers' own setup
// requests trust it, nothing else does.
func WithTLS(cert *tls.Certificate) Option {
	return func(c *config) { c.tls, c.cert = true, cert }
}

// New starts a registry and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	c := config{referrers: true}
	for _, o := range opts {
		o(&c)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	r := &Registry{setup: setupTransport{tr}}
	inner := registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithReferrersSupport(c.referrers),
	)
	r.handler = r.wrap(inner)
	r.srv = httptest.NewUnstartedServer(r.handler)
	if c.tls {
		r.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the code under test refuses
		if c.cert != nil {
			r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*c.cert}}
		}
		r.srv.StartTLS()
		leaf := r.srv.Certificate()
		roots := x509.NewCertPool()
		roots.AddCert(leaf) // trusted as it is, whoever issued it
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		if len(leaf.IPAddresses) == 0 && len(leaf.DNSNames) > 0 {
			tr.TLSClientConfig.ServerName = leaf.DNSNames[0] // a certificate for another name
		}
	} else {
		r.srv.Start()
	}
	t.Cleanup(func() {
		r.srv.Close()
		tr.CloseIdleConnections()
	})
	r.Host = strings.TrimPrefix(strings.TrimPrefix(r.srv.URL, "http://"), "https://")
	return r
}

// Certificate is the TLS certificate the registry serves (WithTLS), nil
// for plain HTTP.
func (r *Registry) Certificate() *x509.Certificate { return r.srv.Certificate() }

// Fault decides what happens to one counted request: it may write a
// response itself and return true, or return false to let the registry
// answer. It runs before the registry sees the request.
type Fault func(w http.ResponseWriter, req *http.Request) (handled bool)

// SetFault installs f for the following requests; nil removes it.
func (r *Registry) SetFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// FailN answers the next n requests with status code (n < 0: all of them),
// then lets requests through.
func FailN(code, n int) Fault {
	var left atomic.Int64
	left.Store(int64(n))
	return func(w http.ResponseWriter, _ *http.Request) bool {
		if n >= 0 && left.Add(-1) < 0 {
			return false
		}
		http.Error(w, http.StatusText(code), code)
		return true
	}
}

// Delay holds every request for d (or until the client gives up), then
// lets the registry answer.
func Delay(d time.Duration) Fault {
	return func(_ http.ResponseWriter, req *http.Request) bool {
		select {
		case <-time.After(d):
		case <-req.Context().Done():
		}
		return false
	}
}

// Hold holds requests until Release, so that a test keeps them in flight
// until it has observed what it needs instead of guessing a delay. Install
// it with SetFault(h.Fault).
type Hold struct {
	then        Fault
	arrived     chan struct{}
	released    chan struct{}
	arriveOnce  sync.Once
	releaseOnce sync.Once
}

// NewHold returns a Hold; once released, requests go to then (nil: to the
// registry).
func NewHold(then Fault) *Hold {
	return &Hold{then: then, arrived: make(chan struct{}), released: make(chan struct{})}
}

// Fault holds req until Release or until the client gives up.
func (h *Hold) Fault(w http.ResponseWriter, req *http.Request) bool {
	select {
	case <-h.released:
		return h.then != nil && h.then(w, req)
	default:
	}
	h.arriveOnce.Do(func() { close(h.arrived) })
	select {
	case <-h.released:
		return false
	case <-req.Context().Done():
		return true // the client gave up: nothing to answer
	}
}

// Arrived is closed once a request is held.
func (h *Hold) Arrived() <-chan struct{} { return h.arrived }

// Release lets held and later requests through. It may be called again;
// a test registers it with t.Cleanup before the registry's own cleanup,
// which waits for held requests.
func (h *Hold) Release() { h.releaseOnce.Do(func() { close(h.released) }) }

// Stall holds every request until the client gives up: the registry never
// answers, so only a deadline or a cancellation ends the call.
func Stall() Fault {
	return func(_ http.ResponseWriter, req *http.Request) bool {
		<-req.Context().Done()
		return true
	}
}

func (r *Registry) wrap(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get(setupHeader) != "" {
			inner.ServeHTTP(w, req)
			return
		}
		r.requests.Add(1)
		r.mu.Lock()
		r.log = append(r.log, req.Method+" "+req.URL.Path)
		f := r.fault
		r.mu.Unlock()
		if f != nil && f(w, req) {
			return
		}
		inner.ServeHTTP(w, req)
	})
}

// Requests returns how many requests the code under test made since New or
// the last ResetRequests.
func (r *Registry) Requests() int64 { return r.requests.Load() }

// RequestLog returns "METHOD /path" for each counted request, in order.
func (r *Registry) RequestLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// ResetRequests zeroes the count and the log.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests.Store(0)
	r.log = nil
}

// Repo returns the repository path in this registry, e.g. "team/app" →
// 127.0.0.1:PORT/team/app.
func (r *Registry) Repo(t testing.TB, path string) name.Repository {
	t.Helper()
	repo, err := name.NewRepository(r.Host+"/"+path, name.Insecure)
	if err != nil {
		t.Fatalf("registrytest: repository %q: %v", path, err)
	}
	return repo
}

// PushImage pushes a random single-platform image to repo and tags it
// with tag (no tag when empty). It returns the image digest.
func (r *Registry) PushImage(t testing.TB, repo, tag string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatalf("registrytest: random image: %v", err)
	}
	return r.push(t, repo, tag, img)
}

// PushIndex pushes a random image index with n platform images (n >= 1)
// to repo and tags it. It returns the index digest and the child digests.
func (r *Registry) PushIndex(t testing.TB, repo, tag string, n int) (name.Digest, []name.Digest) {
	t.Helper()
	idx, err := random.Index(256, 1, int64(n))
	if err != nil {
		t.Fatalf("registrytest: random index: %v", err)
	}
	d := r.push(t, repo, tag, idx)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatalf("registrytest: index manifest: %v", err)
	}
	var children []name.Digest
	for _, m := range im.Manifests {
		children = append(children, r.Repo(t, repo).Digest(m.Digest.String()))
	}
	return d, children
}

type taggable interface {
	remote.Taggable
	Digest() (v1.Hash, error)
}

func (r *Registry) push(t testing.TB, repo, tag string, obj taggable) name.Digest {
	t.Helper()
	h, err := obj.Digest()
	if err != nil {
		t.Fatalf("registrytest: digest: %v", err)
	}
	d := r.Repo(t, repo).Digest(h.String())
	var ref name.Reference = d
	if tag != "" {
		ref = r.Repo(t, repo).Tag(tag)
	}
	if err := remote.Push(ref, obj, r.RemoteOptions()...); err != nil {
		t.Fatalf("registrytest: push %s: %v", ref, err)
	}
	return d
}

// Tag points tag at digest d (which must exist in the same repository).
func (r *Registry) Tag(t testing.TB, d name.Digest, tag string) {
	t.Helper()
	desc, err := remote.Get(d, r.RemoteOptions()...)
	if err != nil {
		t.Fatalf("registrytest: get %s: %v", d, err)
	}
	if err := remote.Tag(d.Context().Tag(tag), desc, r.RemoteOptions()...); err != nil {
		t.Fatalf("registrytest: tag %s: %v", tag, err)
	}
}

// RemoteOptions are go-containerregistry options for setup requests: they
// bypass counting and faults.
func (r *Registry) RemoteOptions() []remote.Option {
	return []remote.Option{
		remote.WithTransport(r.setup),
		remote.WithContext(context.Background()),
	}
}

// InProcess returns a RoundTripper that hands each request for r.Host to
// the registry's handler directly, without a socket: the same registry,
// counting and faults, for tests that make tens of thousands of requests
// (an HTTP round trip over loopback costs milliseconds under -race).
// Requests for any other host fail.
func (r *Registry) InProcess() http.RoundTripper { return inProcess{r} }

type inProcess struct{ r *Registry }

func (p inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != p.r.Host {
		return nil, fmt.Errorf("registrytest: in-process transport for %s got a request for %s", p.r.Host, req.URL.Host)
	}
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:1"
	in.Host = req.URL.Host
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	p.r.handler.ServeHTTP(rec, in)
	if req.Body != nil {
		req.Body.Close()
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

type setupTransport struct{ base http.RoundTripper }

func (s setupTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(setupHeader, "1")
	return s.base.RoundTrip(req)
}
