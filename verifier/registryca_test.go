package verifier_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// testCA is a private certificate authority for registry certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "registry test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a server certificate for the names (IP addresses or DNS
// names).
func (ca *testCA) issue(t *testing.T, names ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRegistryCAs: a registry whose certificate a private CA issued is
// trusted with that CA configured for its host (host:port or host), and
// without it, or with the CA configured for another host only, the
// answer is undecided and names registry.certificateAuthorities.
func TestRegistryCAs(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	reg := registrytest.New(t, registrytest.WithTLS(ca.issue(t, "127.0.0.1")))
	alice := registrytest.NewSigner(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, alice, d, registrytest.Classic)
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	untrusted := "failed TLS verification: the certificate of " + reg.Host +
		" is not signed by a CA signgate trusts for it; set registry.certificateAuthorities for " + reg.Host + " to the CA bundle that issued it"
	tests := []struct {
		name string
		cas  map[string]*x509.CertPool
		want string // UndecidedError.Reason; "" for verified
	}{
		{"no CA", nil, untrusted},
		{"CA for host:port", map[string]*x509.CertPool{reg.Host: ca.pool()}, ""},
		{"CA for host", map[string]*x509.CertPool{"127.0.0.1": ca.pool()}, ""},
		{"CA for another host", map[string]*x509.CertPool{"registry.other.example": ca.pool()}, untrusted},
		{"CA for another port", map[string]*x509.CertPool{"127.0.0.1:1": ca.pool()}, untrusted},
		{"another CA for the host", map[string]*x509.CertPool{reg.Host: newTestCA(t).pool()}, untrusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := verifier.New(verifier.Options{Timeout: hangGuard, AllowedHosts: []string{reg.Host}, RegistryCAs: tc.cas})
			if err != nil {
				t.Fatal(err)
			}
			got, rerr := v.Resolve(t.Context(), ref)
			_, verr := v.Verify(t.Context(), d, newSet(t, 0, authority("alice", alice)))
			if tc.want == "" {
				if rerr != nil || got.String() != d.String() || verr != nil {
					t.Fatalf("Resolve = %v, %v; Verify: %v; want %s and verified", got, rerr, verr, d)
				}
				return
			}
			for _, err := range []error{rerr, verr} {
				var u *verifier.UndecidedError
				if !errors.As(err, &u) || u.Reason != tc.want {
					t.Errorf("err = %v, want undecided with reason %q", err, tc.want)
				}
			}
		})
	}
}

// TestRegistryCAHostName: the CA does not turn off the host name check: a
// certificate it issued for another name is refused.
func TestRegistryCAHostName(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	reg := registrytest.New(t, registrytest.WithTLS(ca.issue(t, "registry.other.example")))
	reg.PushImage(t, "team/app", "v1")
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{Timeout: hangGuard, AllowedHosts: []string{reg.Host},
		RegistryCAs: map[string]*x509.CertPool{reg.Host: ca.pool()}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Resolve(t.Context(), ref)
	want := "failed TLS verification: the certificate of " + reg.Host + " is not valid for that host name"
	var u *verifier.UndecidedError
	if !errors.As(err, &u) || u.Reason != want {
		t.Fatalf("Resolve: %v, want undecided with reason %q", err, want)
	}
}

// TestRegistryCAOptions: RegistryCAs cannot go with a caller's Transport
// or an insecure registry of the same host.
func TestRegistryCAOptions(t *testing.T) {
	t.Parallel()
	pool := newTestCA(t).pool()
	tests := []struct {
		name string
		opts verifier.Options
		want string
	}{
		{"with Transport", verifier.Options{Transport: http.DefaultTransport, RegistryCAs: map[string]*x509.CertPool{"r.example": pool}},
			"registry CAs are not used with a caller's Transport: set the roots in that transport"},
		{"insecure too", verifier.Options{InsecureRegistries: []string{"R.example:443"}, RegistryCAs: map[string]*x509.CertPool{"r.example": pool}},
			"registry CA for r.example: the host is also an insecure (plain HTTP) registry"},
		{"no pool", verifier.Options{RegistryCAs: map[string]*x509.CertPool{"r.example": nil}},
			"registry CA for r.example: no certificate pool"},
		{"bad host", verifier.Options{RegistryCAs: map[string]*x509.CertPool{"https://r.example": pool}},
			`registry CA for "https://r.example": want host or host:port`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifier.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRegistryCAThroughProxy: through registry.proxy (CONNECT) the TLS
// session with the registry is still verified with the host's CA.
func TestRegistryCAThroughProxy(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	reg := registrytest.New(t, registrytest.WithTLS(ca.issue(t, "127.0.0.1")))
	alice := registrytest.NewSigner(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, alice, d, registrytest.Classic)
	var (
		mu      sync.Mutex
		tunnels []string
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		tunnels = append(tunnels, r.Host)
		mu.Unlock()
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		down, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { io.Copy(up, down); up.Close() }()
		go func() { io.Copy(down, up); down.Close() }()
	}))
	t.Cleanup(proxy.Close)
	proxyURL, _ := url.Parse(proxy.URL)
	for _, tc := range []struct {
		name string
		cas  map[string]*x509.CertPool
		want bool // verified
	}{
		{"with the CA", map[string]*x509.CertPool{reg.Host: ca.pool()}, true},
		{"with another CA", map[string]*x509.CertPool{reg.Host: newTestCA(t).pool()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := verifier.New(verifier.Options{Timeout: hangGuard, AllowedHosts: []string{reg.Host}, Proxy: proxyURL, RegistryCAs: tc.cas})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(t.Context(), d, newSet(t, 0, authority("alice", alice)))
			if tc.want && err != nil || !tc.want && !verifier.IsUndecided(err) {
				t.Fatalf("Verify: %v, want verified %v (undecided otherwise)", err, tc.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tunnels) == 0 || tunnels[0] != reg.Host {
		t.Errorf("proxy tunnels = %v, want CONNECT %s", tunnels, reg.Host)
	}
}
