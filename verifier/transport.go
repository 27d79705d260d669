package verifier

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Definite (never transient) transport failures.
var (
	errBlocked        = errors.New("address is in a blocked network")
	errTooLarge       = errors.New("response body too large")
	errDigestMismatch = errors.New("manifest bytes do not match Docker-Content-Digest")
	errTooManyHops    = errors.New("too many redirects")
	errPlainHTTP      = errors.New("registry answered in plain HTTP; list it in insecureRegistries if that is intended")
)

// notTLS reports whether an HTTPS request reached a plain HTTP server.
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "HTTP response to HTTPS client")
}

// newPuller builds the one remote.Puller a Verifier uses for every
// registry. Reusing it keeps each repository's ping and token, so a cold
// verification costs only the requests for the data itself. Retries are
// off: a verification must finish inside an admission deadline, and an
// undecided answer is retried by the caller instead.
func newPuller(o Options) (*remote.Puller, error) {
	base := o.Transport
	if base == nil {
		base = guardedTransport(o.BlockedNetworks, o.AllowedHosts)
	}
	rt := &registryTransport{
		base:        base,
		insecure:    hostSet(o.InsecureRegistries),
		maxManifest: o.MaxManifestBytes,
		maxPayload:  o.MaxPayloadBytes,
		obs:         o.Observer,
	}
	return remote.NewPuller(
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithUserAgent("signgate"),
	)
}

func hostSet(hosts []string) map[string]bool {
	m := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		m[strings.ToLower(h)] = true
	}
	return m
}

// guardedTransport clones http.DefaultTransport with a dialer that refuses
// addresses in blocked unless the dialed host:port or host is allowed. The
// check runs on the resolved address at connect time, so DNS answers cannot
// sneak past it.
func guardedTransport(blocked []netip.Prefix, allowed []string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	g := dialGuard{blocked: blocked, allowed: hostSet(allowed)}
	t.DialContext = g.DialContext
	return t
}

type dialGuard struct {
	blocked []netip.Prefix
	allowed map[string]bool
}

func (g dialGuard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: DefaultTimeout, KeepAlive: 30 * time.Second}
	if !g.allowed[strings.ToLower(addr)] && !g.allowed[strings.ToLower(host)] {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			return g.check(host, address)
		}
	}
	return d.DialContext(ctx, network, addr)
}

func (g dialGuard) check(host, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", host, err)
	}
	ip := ap.Addr().Unmap()
	for _, p := range g.blocked {
		if p.Contains(ip) {
			return fmt.Errorf("dial %s: %s: %w (list the registry in allowedHosts if it is trusted)", host, ip, errBlocked)
		}
	}
	return nil
}

// registryTransport enforces the per-request rules under go-containerregistry:
// HTTPS unless the host is insecure, bounded redirects without credentials
// across hosts, capped bodies, manifest bytes matching the digest the
// registry claims, and an Observer event per request.
type registryTransport struct {
	base        http.RoundTripper
	insecure    map[string]bool
	maxManifest int64
	maxPayload  int64
	obs         Observer
}

func (t *registryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req, upgraded, err := t.prepare(req)
	if err != nil {
		return nil, err
	}
	op := operation(req.URL.Path)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.obs.RegistryRequest(op, 0)
		if upgraded && notTLS(err) {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), errPlainHTTP)
		}
		return nil, err
	}
	t.obs.RegistryRequest(op, resp.StatusCode)
	return t.limit(req, op, resp)
}

// prepare applies the redirect, credential and scheme rules, cloning req
// before changing it. upgraded reports a plain HTTP request sent as HTTPS.
func (t *registryTransport) prepare(req *http.Request) (_ *http.Request, upgraded bool, _ error) {
	hops, origin := 0, req
	for r := req.Response; r != nil && r.Request != nil; r = r.Request.Response {
		hops++
		origin = r.Request
	}
	if hops > maxRedirects {
		return nil, false, fmt.Errorf("GET %s: %w (more than %d)", req.URL.Redacted(), errTooManyHops, maxRedirects)
	}
	crossHost := hops > 0 && !strings.EqualFold(origin.URL.Host, req.URL.Host)
	plain := req.URL.Scheme == "http" && !t.insecure[strings.ToLower(req.URL.Host)]
	if !crossHost && !plain {
		return req, false, nil
	}
	req = req.Clone(req.Context())
	if crossHost {
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
	}
	if plain {
		req.URL.Scheme = "https"
	}
	return req, plain, nil
}

// limit caps the body and, for manifests, checks the claimed digest.
func (t *registryTransport) limit(req *http.Request, op string, resp *http.Response) (*http.Response, error) {
	max := t.maxManifest
	if op == "blob" {
		max = t.maxPayload
	}
	if resp.ContentLength > max && req.Method != http.MethodHead {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w (%d bytes, limit %d)", req.Method, req.URL.Redacted(), errTooLarge, resp.ContentLength, max)
	}
	body := &cappedBody{r: resp.Body, left: max, what: req.URL.Redacted()}
	if op == "manifest" && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		if want, ok := strings.CutPrefix(resp.Header.Get("Docker-Content-Digest"), "sha256:"); ok {
			body.h, body.want = sha256.New(), want
		}
	}
	resp.Body = body
	return resp, nil
}

func operation(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.Contains(path, "/referrers/"):
		return "referrers"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	case path == "/v2/" || path == "/v2":
		return "ping"
	default:
		return "token"
	}
}

// cappedBody fails reads past left bytes and, when h is set, fails at EOF
// if the bytes do not hash to want.
type cappedBody struct {
	r    io.ReadCloser
	left int64
	what string
	h    hash.Hash
	want string
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("read %s: %w", b.what, errTooLarge)
	}
	if b.h != nil {
		b.h.Write(p[:n])
		if err == io.EOF && hex.EncodeToString(b.h.Sum(nil)) != b.want {
			return n, fmt.Errorf("read %s: %w", b.what, errDigestMismatch)
		}
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.r.Close() }
