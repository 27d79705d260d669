package verifier

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/semaphore"

	"github.com/signgate/signgate/internal/imageref"
)

// Definite (never transient) transport failures.
var (
	errBlocked  = errors.New("address is in a blocked network")
	errTooLarge = errors.New("response body too large")
	// errSignatureTooLarge is errTooLarge for a signature manifest or
	// referrers index (Options.MaxSignatureManifestBytes).
	errSignatureTooLarge = fmt.Errorf("signature data: %w", errTooLarge)
	// errAttestationTooLarge is errTooLarge for an attestation layer of a
	// .att manifest (Options.MaxAttestationBytes).
	errAttestationTooLarge = fmt.Errorf("attestation: %w", errTooLarge)
	errDigestMismatch      = errors.New("manifest bytes do not match Docker-Content-Digest")
	errTooManyHops         = errors.New("too many redirects")
	errPlainHTTP           = errors.New("registry answered in plain HTTP; list it in insecureRegistries if that is intended")
	errCredsWithheld       = errors.New("credentials withheld from a host the keychain does not give them to")
	errRealmRefused        = errors.New("token realm on another host than the registry is not allowed")
)

// notTLS reports whether an HTTPS request reached a plain HTTP server.
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "HTTP response to HTTPS client")
}

// pullerBuilder returns what builds the remote.Pullers a Verifier uses
// with the credentials of kc (see pullers): all on one base transport
// (v.base), whatever the credentials. Reusing a Puller
// keeps each repository's ping and token, so a cold verification costs
// only the requests for the data itself. Retries are off: a verification
// must finish inside an admission deadline, and an undecided answer is
// retried by the caller instead.
func (v *Verifier) pullerBuilder(kc authn.Keychain) func() (*remote.Puller, error) {
	o := v.opts
	rt := &registryTransport{
		base:        v.base,
		insecure:    hostSet(o.InsecureRegistries),
		maxManifest: o.MaxManifestBytes,
		maxPayload:  o.MaxPayloadBytes,
		maxAttest:   o.MaxAttestationBytes,
		maxSig:      o.MaxSignatureManifestBytes,
		budget:      v.budget,
		obs:         o.Observer,
		creds:       &credentialGuard{keychain: kc},
		realms:      newRealmRules(append(DefaultTokenRealms(), o.TokenRealms...)),
	}
	rt.latency, _ = o.Observer.(RegistryLatencyObserver)
	return func() (*remote.Puller, error) {
		return remote.NewPuller(
			remote.WithTransport(rt),
			remote.WithAuthFromKeychain(kc),
			remote.WithRetryPredicate(func(error) bool { return false }),
			remote.WithRetryStatusCodes(),
			remote.WithUserAgent("signgate"),
		)
	}
}

// hostSet is the set of canonical registry hosts in hosts
// (Options.InsecureRegistries): "Registry.Example:443" and "docker.io" name
// the hosts references canonicalise to.
func hostSet(hosts []string) map[string]bool {
	m := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		m[imageref.Host(h)] = true // compared with canonical registry hosts
	}
	return m
}

// guardedTransport clones http.DefaultTransport with a dialer that refuses
// addresses in blocked unless the dialed host:port or host is allowed. The
// check runs on the resolved address at connect time, so DNS answers cannot
// sneak past it.
//
// The environment's proxy settings (HTTPS_PROXY, HTTP_PROXY) are ignored:
// the transport uses proxy only when it is set. A proxy connects to the
// registry itself, where the dial guard cannot see the address, so the
// registry host is resolved and checked against the same rules before the
// proxy is asked (proxyFor). The proxy's own host:port is allowed: proxies
// often sit on private or link-local addresses, and the operator named it.
func guardedTransport(blocked []netip.Prefix, allowed []string, proxy *url.URL) *http.Transport {
	g := dialGuard{blocked: blocked, allowed: hostSet(allowed), lookup: net.DefaultResolver.LookupNetIP}
	return g.transport(proxy)
}

func (g dialGuard) transport(proxy *url.URL) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if proxy != nil {
		g.allowed[strings.ToLower(canonicalAddr(proxy))] = true
		t.Proxy = g.proxyFor(proxy)
	}
	t.DialContext = g.DialContext
	return t
}

// withRegistryCAs returns t, or when cas (Options.RegistryCAs) is not
// empty a RoundTripper that sends each request for a host with a CA
// through a clone of t whose TLS roots are that CA pool alone, and every
// other request through t (system roots). The clones keep t's dial guard
// and proxy: only the roots differ. A request is matched by its URL's
// host:port first, then its host.
func withRegistryCAs(t *http.Transport, cas map[string]*x509.CertPool) http.RoundTripper {
	if len(cas) == 0 {
		return t
	}
	r := &caTransport{def: t, byHost: make(map[string]*http.Transport, len(cas))}
	for h, pool := range cas {
		c := t.Clone()
		c.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		r.byHost[strings.ToLower(h)] = c
	}
	return r
}

// caTransport routes requests to the transport trusting their host's CA.
type caTransport struct {
	def    *http.Transport
	byHost map[string]*http.Transport // host:port or host, lower case
}

func (r *caTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.forURL(req.URL).RoundTrip(req)
}

func (r *caTransport) forURL(u *url.URL) *http.Transport {
	if t, ok := r.byHost[strings.ToLower(canonicalAddr(u))]; ok {
		return t
	}
	if t, ok := r.byHost[strings.ToLower(u.Hostname())]; ok {
		return t
	}
	return r.def
}

// CloseIdleConnections closes the idle connections of every transport.
func (r *caTransport) CloseIdleConnections() {
	r.def.CloseIdleConnections()
	for _, t := range r.byHost {
		t.CloseIdleConnections()
	}
}

type dialGuard struct {
	blocked []netip.Prefix
	allowed map[string]bool
	// lookup resolves a registry host for proxyFor; tests replace it.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// proxyFor returns the transport's Proxy function: proxy for every request
// whose target the guard accepts, an errBlocked error otherwise, so the
// proxy is never asked to connect to a blocked address.
func (g dialGuard) proxyFor(proxy *url.URL) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		if err := g.checkTarget(req.Context(), req.URL); err != nil {
			return nil, err
		}
		return proxy, nil
	}
}

// checkTarget applies the dial rules to u's host before a proxy connects to
// it: allowed host or host:port pass; otherwise every address the host
// resolves to must be outside the blocked networks (the proxy may use any).
func (g dialGuard) checkTarget(ctx context.Context, u *url.URL) error {
	addr := canonicalAddr(u)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("check %s: %w", u.Host, err)
	}
	if g.allowed[strings.ToLower(addr)] || g.allowed[strings.ToLower(host)] {
		return nil
	}
	ips := []netip.Addr{}
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = append(ips, ip)
	} else if ips, err = g.lookup(ctx, "ip", host); err != nil {
		return fmt.Errorf("resolve %s before asking the proxy: %w", host, err)
	}
	for _, ip := range ips {
		if err := g.check(addr, netip.AddrPortFrom(ip, 0).String()); err != nil {
			return fmt.Errorf("proxy to %s:%s: %w", host, port, err)
		}
	}
	return nil
}

// canonicalAddr is u's host:port, with the scheme's default port if absent.
func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func (g dialGuard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: DefaultTimeout, KeepAlive: 30 * time.Second}
	if !g.allowed[strings.ToLower(addr)] && !g.allowed[strings.ToLower(host)] {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			return g.check(addr, address)
		}
	}
	return d.DialContext(ctx, network, addr)
}

// check refuses address (an ip:port hostport resolved to) with a
// *BlockedError when it is in a blocked network.
func (g dialGuard) check(hostport, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", hostport, err)
	}
	if b := blocked(g.blocked, hostport, ap.Addr().Unmap()); b != nil {
		return b
	}
	return nil
}

// registryTransport enforces the per-request rules under go-containerregistry:
// HTTPS unless the host is insecure, bounded redirects without credentials
// across hosts, credentials only to hosts the keychain gives them to,
// capped bodies, manifest bytes matching the digest the registry claims,
// and an Observer event per request.
type registryTransport struct {
	base        http.RoundTripper
	insecure    map[string]bool
	maxManifest int64
	maxPayload  int64
	maxAttest   int64
	maxSig      int64       // manifests and referrers read for signature layouts (signatureData)
	budget      *byteBudget // nil: bodies are not accounted
	obs         Observer
	latency     RegistryLatencyObserver // obs, when it is one; else nil
	creds       *credentialGuard
	realms      realmRules
}

func (t *registryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req, upgraded, err := t.prepare(req)
	if err != nil {
		return nil, err
	}
	req, withheld, err := t.creds.check(req)
	if err != nil {
		return nil, err
	}
	op := operation(req.URL.Path)
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if t.latency != nil {
		t.latency.RegistryRequestDuration(req.URL.Host, op, time.Since(start))
	}
	if err != nil {
		t.obs.RegistryRequest(op, 0)
		if upgraded && notTLS(err) {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), errPlainHTTP)
		}
		if ce := newCertError(req.URL, err); ce != nil {
			return nil, ce
		}
		return nil, err
	}
	t.obs.RegistryRequest(op, resp.StatusCode)
	recordHead(req, op, resp.StatusCode)
	if resp.StatusCode == http.StatusUnauthorized {
		if err := t.realms.check(req.URL, resp.Header); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	if withheld && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		resp.Body.Close()
		return nil, t.creds.refusal(req)
	}
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

// realmRules are the token realms on other hosts a registry may name:
// canonical registry host → realm hosts (host or host:port, lower case).
//
// go-containerregistry fetches a token from whatever realm a registry's
// 401 names (WWW-Authenticate: Bearer realm=...), on any host: a hostile
// registry could point the gate at any HTTP service it can reach. Every
// 401 passing through the transport is checked before go-containerregistry
// reads it, so a refused realm is never contacted. The realm request
// itself goes through this same transport, so the dial guard applies to
// it as to the registry.
type realmRules map[string]map[string]bool

func newRealmRules(pairs []TokenRealm) realmRules {
	r := realmRules{}
	for _, p := range pairs {
		reg := imageref.Host(p.Registry)
		if r[reg] == nil {
			r[reg] = map[string]bool{}
		}
		r[reg][strings.ToLower(p.Realm)] = true
	}
	return r
}

// check returns an errRealmRefused error when a challenge in h names a
// realm URL whose host is neither reg's host nor allowed for reg. Realms
// that are not http(s) URLs (Basic realms are free text) are left alone.
func (r realmRules) check(reg *url.URL, h http.Header) error {
	for _, realm := range challengeRealms(h) {
		u, err := url.Parse(realm)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		if strings.EqualFold(u.Hostname(), reg.Hostname()) {
			continue
		}
		regHost := imageref.Host(reg.Host)
		allowed := r[regHost]
		if allowed[strings.ToLower(u.Host)] || allowed[strings.ToLower(u.Hostname())] {
			continue
		}
		return fmt.Errorf("use token realm %s named by registry %s: %w; if that token service is trusted, add {registry: %s, realm: %s} to registry.tokenRealms",
			u.Host, regHost, errRealmRefused, regHost, u.Host)
	}
	return nil
}

// challengeRealms returns the realm parameter values of every
// WWW-Authenticate challenge in h.
func challengeRealms(h http.Header) []string {
	var realms []string
	for _, v := range h.Values("WWW-Authenticate") {
		for rest := v; ; {
			i := strings.Index(strings.ToLower(rest), "realm=")
			if i < 0 {
				break
			}
			// Only a parameter name: preceded by a separator, not "xrealm=".
			if i > 0 && !strings.ContainsRune(" \t,", rune(rest[i-1])) {
				rest = rest[i+len("realm="):]
				continue
			}
			rest = rest[i+len("realm="):]
			var val string
			if strings.HasPrefix(rest, `"`) {
				end := strings.IndexByte(rest[1:], '"')
				if end < 0 {
					val, rest = rest[1:], ""
				} else {
					val, rest = rest[1:1+end], rest[2+end:]
				}
			} else {
				end := strings.IndexAny(rest, ", \t")
				if end < 0 {
					end = len(rest)
				}
				val, rest = rest[:end], rest[end:]
			}
			realms = append(realms, val)
		}
	}
	return realms
}

// credentialGuard decides where keychain credentials may travel.
//
// go-containerregistry exchanges a registry's credentials for a bearer
// token at whatever realm the registry's 401 names (WWW-Authenticate:
// Bearer realm=...), on any host. The rule here: a credential (Basic
// username and password, or an OAuth2 refresh token or password) is sent
// to a host only if the keychain gives that same credential to that host.
// A realm on the registry's own host:port therefore gets the credentials
// as before; a realm on another host gets an anonymous token request (the
// Authorization header is removed, and an OAuth2 form carrying a secret is
// not sent at all), and if it then refuses, the request fails with
// errCredsWithheld, a definite answer. To trust a token service on another
// host, as Docker Hub's is, give it the same credentials in the keychain
// (a docker config or pull-secret entry for the token host, or a pattern
// that covers it). Redirects are handled in prepare and never carry
// credentials to another host. Bearer tokens are not checked: the
// registry client attaches them only to the registry's own host.
//
// Confirmed host and credential pairs are remembered (up to
// maxCredentialGrants, 32 bytes each), so the keychain is asked once per
// pair, not on every request to a Basic-auth registry, and a credential
// the registry client still holds after the keychain rotated it keeps
// working where it was confirmed.
type credentialGuard struct {
	keychain authn.Keychain
	mu       sync.Mutex
	granted  map[[sha256.Size]byte]bool
}

const maxCredentialGrants = 4096

// check returns req, or a copy without credentials the keychain does not
// give to req's host (withheld), or an error for a form that would carry
// such a secret in its body.
func (g *credentialGuard) check(req *http.Request) (_ *http.Request, withheld bool, _ error) {
	if user, pass, ok := req.BasicAuth(); ok {
		if g.allowed(req, "basic", user+":"+pass, func(c *authn.AuthConfig) bool { return basicOf(c) == user+":"+pass }) {
			return req, false, nil
		}
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
		return req, true, nil
	}
	form, err := tokenForm(req)
	if err != nil {
		return nil, false, err
	}
	if tok := form.Get("refresh_token"); tok != "" && !g.allowed(req, "refresh", tok, func(c *authn.AuthConfig) bool { return c.IdentityToken == tok }) {
		return nil, false, g.refusal(req)
	}
	if pw := form.Get("password"); pw != "" {
		cred := form.Get("username") + ":" + pw
		if !g.allowed(req, "basic", cred, func(c *authn.AuthConfig) bool { return basicOf(c) == cred }) {
			return nil, false, g.refusal(req)
		}
	}
	return req, false, nil
}

func (g *credentialGuard) refusal(req *http.Request) error {
	return fmt.Errorf("token realm %s: %w (a realm on another host than the registry gets them only if the keychain gives it the same credentials)",
		req.URL.Host, errCredsWithheld)
}

// allowed reports whether the keychain gives cred (of kind) to req's host.
func (g *credentialGuard) allowed(req *http.Request, kind, cred string, match func(*authn.AuthConfig) bool) bool {
	host := strings.ToLower(req.URL.Host)
	key := sha256.Sum256([]byte(kind + "\x00" + host + "\x00" + cred))
	g.mu.Lock()
	ok := g.granted[key]
	g.mu.Unlock()
	if ok {
		return true
	}
	reg, err := name.NewRegistry(host)
	if err != nil {
		return false
	}
	auth, err := authn.Resolve(req.Context(), g.keychain, reg)
	if err != nil {
		return false
	}
	cfg, err := authn.Authorization(req.Context(), auth)
	if err != nil || !match(cfg) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.granted == nil || len(g.granted) >= maxCredentialGrants {
		g.granted = make(map[[sha256.Size]byte]bool)
	}
	g.granted[key] = true
	return true
}

// basicOf is the user:password the registry client would send for c as
// Basic auth, or "" if it would send none.
func basicOf(c *authn.AuthConfig) string {
	if c.Username != "" && c.Password != "" {
		return c.Username + ":" + c.Password
	}
	if b, err := base64.StdEncoding.DecodeString(c.Auth); err == nil && c.Auth != "" {
		return string(b)
	}
	return ""
}

// tokenForm returns the form of an OAuth2 token POST (empty for any other
// request), reading a copy of the body. Token forms are a few hundred
// bytes; larger bodies are not forms this client sends.
func tokenForm(req *http.Request) (url.Values, error) {
	if req.Method != http.MethodPost || req.GetBody == nil ||
		!strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return nil, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return nil, err
	}
	return url.ParseQuery(string(b))
}

// limit caps the body and, for manifests, checks the claimed digest. A
// successful body's cap, or its Content-Length when smaller, is reserved
// from the byte budget before the body is handed on, and released when it
// has been read to its end, failed or been closed.
func (t *registryTransport) limit(req *http.Request, op string, resp *http.Response) (*http.Response, error) {
	max, tooLarge := t.maxManifest, errTooLarge
	switch {
	case op == "blob" && isAttestationData(req.Context()):
		max, tooLarge = t.maxAttest, errAttestationTooLarge
	case op == "blob":
		max = t.maxPayload
	case (op == "manifest" || op == "referrers") && isSignatureData(req.Context()):
		max, tooLarge = t.maxSig, errSignatureTooLarge
	}
	if resp.ContentLength > max && req.Method != http.MethodHead {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w (%d bytes, limit %d)", req.Method, req.URL.Redacted(), tooLarge, resp.ContentLength, max)
	}
	body := &cappedBody{r: resp.Body, left: max, what: req.URL.Redacted(), tooLarge: tooLarge}
	if op == "manifest" && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		if want, ok := strings.CutPrefix(resp.Header.Get("Docker-Content-Digest"), "sha256:"); ok {
			body.h, body.want = sha256.New(), want
		}
	}
	if t.budget != nil && req.Method == http.MethodGet && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		n := max
		if resp.ContentLength >= 0 && resp.ContentLength < n {
			n = resp.ContentLength
		}
		release, err := t.budget.acquire(req.Context(), n)
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s: wait for %d bytes of the response budget: %w", req.Method, req.URL.Redacted(), n, err)
		}
		body.release = release
	}
	resp.Body = body
	return resp, nil
}

// byteBudget is Options.MaxBytesInFlight: a weighted semaphore over the
// response bytes being read at once. Safe for concurrent use.
type byteBudget struct {
	size  int64
	sem   *semaphore.Weighted
	inUse atomic.Int64 // reserved now (tests)
}

func newByteBudget(size int64) *byteBudget {
	return &byteBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// acquire reserves n bytes (at most the whole budget) within ctx and
// returns what gives them back, safe to call more than once.
func (b *byteBudget) acquire(ctx context.Context, n int64) (release func(), _ error) {
	n = min(n, b.size)
	if n <= 0 {
		return func() {}, nil
	}
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	b.inUse.Add(n)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.inUse.Add(-n)
			b.sem.Release(n)
		})
	}, nil
}

// signatureDataKey marks a context whose manifest and referrers requests
// read signature layouts: they are capped at MaxSignatureManifestBytes.
type signatureDataKey struct{}

func withSignatureData(ctx context.Context) context.Context {
	return context.WithValue(ctx, signatureDataKey{}, true)
}

func isSignatureData(ctx context.Context) bool {
	b, _ := ctx.Value(signatureDataKey{}).(bool)
	return b
}

// attestationDataKey marks a context whose blob requests read
// attestation layers: they are capped at MaxAttestationBytes instead of
// MaxPayloadBytes.
type attestationDataKey struct{}

func withAttestationData(ctx context.Context) context.Context {
	return context.WithValue(ctx, attestationDataKey{}, true)
}

func isAttestationData(ctx context.Context) bool {
	b, _ := ctx.Value(attestationDataKey{}).(bool)
	return b
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
// if the bytes do not hash to want. release (if set) runs once, at the
// body's end: EOF, a read error, or Close.
type cappedBody struct {
	r        io.ReadCloser
	left     int64
	what     string
	tooLarge error
	h        hash.Hash
	want     string
	release  func()
}

func (b *cappedBody) Read(p []byte) (n int, err error) {
	defer func() {
		if err != nil && b.release != nil {
			b.release()
		}
	}()
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err = b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("read %s: %w", b.what, b.tooLarge)
	}
	if b.h != nil {
		b.h.Write(p[:n])
		if err == io.EOF && hex.EncodeToString(b.h.Sum(nil)) != b.want {
			return n, fmt.Errorf("read %s: %w", b.what, errDigestMismatch)
		}
	}
	return n, err
}

func (b *cappedBody) Close() error {
	if b.release != nil {
		b.release()
	}
	return b.r.Close()
}
