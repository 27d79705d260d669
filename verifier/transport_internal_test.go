package verifier

import (
	"crypto/x509"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
)

func TestDialGuard(t *testing.T) {
	t.Parallel()
	g := dialGuard{blocked: DefaultBlockedNetworks()}
	tests := []struct {
		address string
		blocked bool
	}{
		{"127.0.0.1:443", true},
		{"127.8.9.10:443", true},
		{"[::1]:443", true},
		{"169.254.169.254:80", true},
		{"[fe80::1]:443", true},
		{"0.0.0.0:443", true},
		{"[::]:443", true},
		{"224.0.0.1:443", true},
		{"[::ffff:127.0.0.1]:443", true}, // v4-mapped loopback
		{"10.0.0.5:443", false},          // private networks are legitimate registries
		{"192.168.1.10:5000", false},
		{"140.82.112.3:443", false},
		{"[2606:4700::1]:443", false},
	}
	for _, tc := range tests {
		t.Run(tc.address, func(t *testing.T) {
			err := g.check("registry.example", tc.address)
			if got := errors.Is(err, errBlocked); got != tc.blocked {
				t.Errorf("blocked = %v (%v), want %v", got, err, tc.blocked)
			}
		})
	}
}

// TestDialGuardNetwork: the guard's refusal names the host:port and the
// kind of network the address is in.
func TestDialGuardNetwork(t *testing.T) {
	t.Parallel()
	custom := netip.MustParsePrefix("10.20.0.0/16")
	g := dialGuard{blocked: append(DefaultBlockedNetworks(), custom)}
	tests := []struct {
		address, class, network string
	}{
		{"127.0.0.1:5000", NetworkLoopback, "loopback"},
		{"[::1]:443", NetworkLoopback, "loopback"},
		{"[::ffff:127.0.0.1]:443", NetworkLoopback, "loopback"},
		{"169.254.169.254:80", NetworkMetadata, "cloud metadata address 169.254.169.254"},
		{"169.254.10.1:443", NetworkLinkLocal, "link-local"},
		{"[fe80::1]:443", NetworkLinkLocal, "link-local"},
		{"0.0.0.0:443", NetworkUnspecified, "unspecified"},
		{"[::]:443", NetworkUnspecified, "unspecified"},
		{"224.0.0.1:443", NetworkMulticast, "multicast"},
		{"[ff02::1]:443", NetworkMulticast, "multicast"},
		{"10.20.3.4:443", NetworkConfigured, "a blocked network 10.20.0.0/16"},
	}
	for _, tc := range tests {
		t.Run(tc.address, func(t *testing.T) {
			err := g.check("registry.example:5000", tc.address)
			var b *BlockedError
			if !errors.As(err, &b) || !errors.Is(err, errBlocked) {
				t.Fatalf("check = %v, want a *BlockedError", err)
			}
			if b.Host != "registry.example:5000" || b.Class != tc.class || b.Network() != tc.network {
				t.Errorf("BlockedError %+v (Network %q), want host registry.example:5000, class %q, network %q", b, b.Network(), tc.class, tc.network)
			}
			r, ok := classify("resolve", "registry.example:5000/app:v1", err).(*RefusedError)
			if !ok || r.Kind != RefusalNetworkGuard || r.Guard != b {
				t.Errorf("classify = %#v, want a RefusedError of Kind %q carrying the BlockedError", r, RefusalNetworkGuard)
			}
			if want := "it is blocked by the network guard (" + tc.network + "); list it in registry.allowedHosts if it is trusted"; r != nil && r.Rule != want {
				t.Errorf("Rule = %q, want %q", r.Rule, want)
			}
		})
	}
}

func TestRegistryTransportPrepare(t *testing.T) {
	t.Parallel()
	rt := &registryTransport{insecure: hostSet([]string{"insecure.example:5000"})}
	// chain builds a request that followed redirects through urls.
	chain := func(urls ...string) *http.Request {
		var prev *http.Request
		for _, u := range urls {
			pu, _ := url.Parse(u)
			r := &http.Request{Method: http.MethodGet, URL: pu, Header: http.Header{"Authorization": {"Bearer secret"}}}
			if prev != nil {
				r.Response = &http.Response{Request: prev}
			}
			prev = r
		}
		return prev
	}
	tests := []struct {
		name       string
		req        *http.Request
		wantErr    error
		wantScheme string
		wantAuth   bool
	}{
		{"https kept", chain("https://reg.example/v2/"), nil, "https", true},
		{"plain HTTP upgraded", chain("http://reg.example/v2/"), nil, "https", true},
		{"plain HTTP for an insecure registry", chain("http://insecure.example:5000/v2/"), nil, "http", true},
		{"same-host redirect keeps credentials", chain("https://reg.example/a", "https://reg.example/b"), nil, "https", true},
		{"cross-host redirect drops credentials", chain("https://reg.example/a", "https://storage.example/b"), nil, "https", false},
		{"too many redirects", chain("https://a.example/", "https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4"), errTooManyHops, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := rt.prepare(tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.URL.Scheme != tc.wantScheme {
				t.Errorf("scheme = %q, want %q", got.URL.Scheme, tc.wantScheme)
			}
			if has := got.Header.Get("Authorization") != ""; has != tc.wantAuth {
				t.Errorf("Authorization sent = %v, want %v", has, tc.wantAuth)
			}
			if tc.req.Header.Get("Authorization") == "" {
				t.Error("prepare modified the caller's request")
			}
		})
	}
}

// TestInsecureHostsCanonical: insecureRegistries entries name hosts as
// references canonicalise them, so "Registry.Example:443" and "docker.io"
// apply to registry.example/… and nginx.
func TestInsecureHostsCanonical(t *testing.T) {
	got := hostSet([]string{"Registry.Example:443", "docker.io", "127.0.0.1:5000"})
	for _, h := range []string{"registry.example", "index.docker.io", "127.0.0.1:5000"} {
		if !got[h] {
			t.Errorf("hostSet lacks %q: %v", h, got)
		}
	}
}

// TestRegistryCATransport: the transports trusting a host's CA are
// clones of the guarded one: same dial guard and proxy, only the roots
// differ, and requests are routed by host:port, then host.
func TestRegistryCATransport(t *testing.T) {
	t.Parallel()
	proxy := &url.URL{Scheme: "http", Host: "proxy.example:3128"}
	base := guardedTransport(DefaultBlockedNetworks(), nil, proxy)
	a, b := x509.NewCertPool(), x509.NewCertPool()
	rt := withRegistryCAs(base, map[string]*x509.CertPool{"r.example": a, "R.example:8443": b}).(*caTransport)
	for _, tc := range []struct {
		url  string
		want *x509.CertPool // nil: the base transport
	}{
		{"https://r.example/v2/", a},
		{"https://r.example:5000/v2/", a},
		{"https://r.example:8443/v2/", b},
		{"https://R.EXAMPLE:8443/v2/", b},
		{"https://other.example/v2/", nil},
	} {
		u, _ := url.Parse(tc.url)
		got := rt.forURL(u)
		switch {
		case tc.want == nil && got != base:
			t.Errorf("%s: not the base transport", tc.url)
		case tc.want != nil && (got.TLSClientConfig == nil || got.TLSClientConfig.RootCAs != tc.want):
			t.Errorf("%s: not the transport with the host's pool", tc.url)
		case got.DialContext == nil || got.Proxy == nil:
			t.Errorf("%s: transport lost the dial guard or the proxy", tc.url)
		}
	}
	if withRegistryCAs(base, nil) != http.RoundTripper(base) {
		t.Error("without CAs the base transport is not used as is")
	}
}
