package verifier

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// recordingProxy records the first line of every request it gets (CONNECT
// included) and answers 204 itself: it never connects anywhere.
type recordingProxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecordingProxy(t *testing.T) *recordingProxy {
	t.Helper()
	p := &recordingProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Method+" "+r.RequestURI)
		p.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *recordingProxy) URL(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (p *recordingProxy) Seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// TestTransportIgnoresEnvironmentProxy: HTTPS_PROXY and HTTP_PROXY do not
// route registry requests; without registry.proxy the transport has no
// proxy at all. Not parallel: it sets environment variables.
func TestTransportIgnoresEnvironmentProxy(t *testing.T) {
	proxy := newRecordingProxy(t)
	var direct atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		direct.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(backend.Close)
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"} {
		t.Setenv(k, proxy.srv.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	backendAddr := strings.TrimPrefix(backend.URL, "http://")
	tr := guardedTransport(DefaultBlockedNetworks(), []string{backendAddr, proxy.URL(t).Host}, nil)
	t.Cleanup(tr.CloseIdleConnections)
	if tr.Proxy != nil {
		t.Error("transport has a Proxy function although no proxy is configured")
	}
	// registry.example stands for a registry name (the environment's proxy
	// skips loopback literals); it is dialled as the local backend.
	guarded := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "registry.example:80" {
			addr = backendAddr
		}
		return guarded(ctx, network, addr)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://registry.example/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()
	if n := direct.Load(); n != 1 {
		t.Errorf("the registry got %d requests, want 1 (direct)", n)
	}
	if seen := proxy.Seen(); len(seen) > 0 {
		t.Errorf("the environment's proxy got %q, want no request", seen)
	}
}

// TestProxyChecksTarget: with a configured proxy, the registry host is
// resolved and checked against the blocked networks before the proxy is
// asked; allowed hosts and public addresses go through the proxy.
func TestProxyChecksTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		target    string
		addrs     []string // what the registry name resolves to
		allowed   []string
		wantErr   error // nil: proxied
		wantProxy string
	}{
		{name: "name resolving to the metadata address", target: "http://registry.example/v2/", addrs: []string{"169.254.169.254"}, wantErr: errBlocked},
		{name: "name resolving to loopback among public addresses", target: "https://registry.example/v2/", addrs: []string{"10.0.0.5", "127.0.0.1"}, wantErr: errBlocked},
		{name: "name resolving to v4-mapped loopback", target: "https://registry.example/v2/", addrs: []string{"::ffff:127.0.0.1"}, wantErr: errBlocked},
		{name: "loopback literal", target: "http://127.0.0.1:5000/v2/", wantErr: errBlocked},
		{name: "link-local IPv6 literal over HTTPS", target: "https://[fe80::1]/v2/", wantErr: errBlocked},
		{name: "metadata literal over HTTPS (no CONNECT)", target: "https://169.254.169.254/v2/", wantErr: errBlocked},
		{name: "name that does not resolve", target: "http://registry.example/v2/", wantErr: errNoSuchHost},
		{name: "allow-listed name resolving to link-local", target: "http://registry.example/v2/", addrs: []string{"169.254.10.10"}, allowed: []string{"registry.example"}, wantProxy: "GET http://registry.example/v2/"},
		{name: "allow-listed host:port literal", target: "http://127.0.0.1:5000/v2/", allowed: []string{"127.0.0.1:5000"}, wantProxy: "GET http://127.0.0.1:5000/v2/"},
		{name: "name resolving to private addresses", target: "http://registry.example/v2/", addrs: []string{"10.0.0.5", "fd00::5"}, wantProxy: "GET http://registry.example/v2/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := newRecordingProxy(t)
			g := dialGuard{blocked: DefaultBlockedNetworks(), allowed: hostSet(tc.allowed), lookup: fakeLookup("registry.example", tc.addrs)}
			tr := g.transport(proxy.URL(t))
			t.Cleanup(tr.CloseIdleConnections)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("RoundTrip error = %v, want %v", err, tc.wantErr)
			}
			var want []string
			if tc.wantProxy != "" {
				want = []string{tc.wantProxy}
			}
			if seen := proxy.Seen(); !slices.Equal(seen, want) {
				t.Errorf("proxy got %q, want %q", seen, want)
			}
		})
	}
}

var errNoSuchHost = errors.New("no such host")

// fakeLookup resolves host to addrs (none: errNoSuchHost) and nothing else.
func fakeLookup(host string, addrs []string) func(context.Context, string, string) ([]netip.Addr, error) {
	return func(_ context.Context, _, h string) ([]netip.Addr, error) {
		if h != host || len(addrs) == 0 {
			return nil, errNoSuchHost
		}
		ips := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			ips[i] = netip.MustParseAddr(a)
		}
		return ips, nil
	}
}
