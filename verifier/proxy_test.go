package verifier_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signgate/signgate/verifier"
)

// forwardProxy is a plain HTTP forward proxy (absolute-URI requests; no
// CONNECT) that records the target of every request it gets.
type forwardProxy struct {
	srv *httptest.Server
	tr  *http.Transport
	mu  sync.Mutex
	got []string
}

func newForwardProxy(t *testing.T) *forwardProxy {
	t.Helper()
	p := &forwardProxy{tr: &http.Transport{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

func (p *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.got = append(p.got, r.Method+" "+r.RequestURI)
	p.mu.Unlock()
	if r.Method == http.MethodConnect || !r.URL.IsAbs() {
		http.Error(w, "this proxy forwards plain HTTP only", http.StatusBadGateway)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Connection")
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (p *forwardProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// TestVerifyThroughProxy: with Options.Proxy, an allow-listed registry is
// read through the proxy and verification works; a registry on a blocked
// address that is not allow-listed is refused before the proxy sees any
// request, with the same definite error as without a proxy.
func TestVerifyThroughProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		allowed    bool
		wantResult string
	}{
		{name: "allow-listed registry through the proxy", allowed: true, wantResult: "verified"},
		{name: "loopback registry not allow-listed", allowed: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, alice, d := signedApp(t)
			proxy := newForwardProxy(t)
			proxyURL, err := url.Parse(proxy.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			opts := verifier.Options{Timeout: hangGuard, InsecureRegistries: []string{reg.Host}, Proxy: proxyURL}
			if tc.allowed {
				opts.AllowedHosts = []string{reg.Host}
			}
			v, err := verifier.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			reg.ResetRequests()
			res, err := v.Verify(t.Context(), d, newSet(t, 0, authority("alice", alice)))
			if !tc.allowed {
				if err == nil || verifier.IsUndecided(err) || !strings.Contains(err.Error(), "allowedHosts") {
					t.Fatalf("Verify err = %v, want a definite refusal mentioning allowedHosts", err)
				}
				if got := proxy.requests(); len(got) > 0 {
					t.Errorf("proxy got %q, want no request", got)
				}
				if n := reg.Requests(); n != 0 {
					t.Errorf("registry got %d requests, want 0", n)
				}
				return
			}
			if got := outcome(res, err); got != tc.wantResult {
				t.Fatalf("Verify = %s, want %s", got, tc.wantResult)
			}
			// The registry client tries HTTPS first (a CONNECT, refused by
			// this proxy) and then plain HTTP, as the registry is insecure.
			var forwarded int64
			for _, r := range proxy.requests() {
				switch {
				case r == "CONNECT "+reg.Host:
				case strings.HasPrefix(r, "GET http://"+reg.Host+"/v2/"), strings.HasPrefix(r, "HEAD http://"+reg.Host+"/v2/"):
					forwarded++
				default:
					t.Errorf("proxy got %q, want requests for %s only", r, reg.Host)
				}
			}
			if forwarded == 0 || forwarded != reg.Requests() {
				t.Errorf("proxy forwarded %d requests, registry got %d: want every registry request through the proxy", forwarded, reg.Requests())
			}
		})
	}
}

func TestProxyOptionValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    verifier.Options
		wantErr string
	}{
		{"socks scheme", verifier.Options{Proxy: &url.URL{Scheme: "socks5", Host: "proxy.example:1080"}}, "want http://host[:port] or https://host[:port]"},
		{"no host", verifier.Options{Proxy: &url.URL{Scheme: "http"}}, "want http://host[:port] or https://host[:port]"},
		{"with a caller's transport", verifier.Options{Proxy: &url.URL{Scheme: "http", Host: "proxy.example:3128"}, Transport: http.DefaultTransport}, "set the proxy in that transport"},
		{"http proxy", verifier.Options{Proxy: &url.URL{Scheme: "http", Host: "proxy.example:3128"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifier.New(tc.opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New err = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}
