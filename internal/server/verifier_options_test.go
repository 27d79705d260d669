package server

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signgate/signgate/internal/cloudauth"
	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// TestVerifierOptionsProxy: registry.proxy reaches the verifier; without it
// the verifier gets no proxy (and ignores the environment's).
func TestVerifierOptionsProxy(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"no proxy", head, ""},
		{"proxy", head + "registry: {proxy: \"http://proxy.example:3128\"}\n", "http://proxy.example:3128"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := policy.ParseConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if u := mustVerifierOptions(t, cfg).Proxy; u != nil {
				got = u.String()
			}
			if got != tc.want {
				t.Errorf("VerifierOptions().Proxy = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVerifierOptionsTokenRealms: registry.tokenRealms reaches the
// verifier (which adds its built-in pairs itself).
func TestVerifierOptionsTokenRealms(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	tests := []struct {
		name string
		yaml string
		want []verifier.TokenRealm
	}{
		{"none", head, nil},
		{"one pair", head + "registry: {tokenRealms: [{registry: registry.corp.example, realm: sso.corp.example}]}\n",
			[]verifier.TokenRealm{{Registry: "registry.corp.example", Realm: "sso.corp.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := policy.ParseConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := mustVerifierOptions(t, cfg).TokenRealms; !slices.Equal(got, tc.want) {
				t.Errorf("VerifierOptions().TokenRealms = %v, want %v", got, tc.want)
			}
		})
	}
}
func TestVerifierTagTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{0, -1},                              // configuration 0 = disabled = verifier's negative
		{15 * time.Second, 15 * time.Second}, // passed through
	} {
		if got := verifierTagTTL(tc.in); got != tc.want {
			t.Errorf("verifierTagTTL(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestVerifierOptionsRegistryCAs: registry.certificateAuthorities reach
// the verifier as certificate pools, keyed as configured.
func TestVerifierOptionsRegistryCAs(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	cfg, err := policy.ParseConfig([]byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustVerifierOptions(t, cfg).RegistryCAs; got != nil {
		t.Errorf("without certificateAuthorities: RegistryCAs = %v, want nil", got)
	}
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = policy.ParseConfig([]byte(head + "registry: {certificateAuthorities: {\"harbor.corp.example:8443\": " + file + "}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := mustVerifierOptions(t, cfg).RegistryCAs
	if len(got) != 1 || got["harbor.corp.example:8443"] == nil {
		t.Fatalf("RegistryCAs = %v, want a pool for harbor.corp.example:8443", got)
	}
	if _, err := srv.Certificate().Verify(x509.VerifyOptions{Roots: got["harbor.corp.example:8443"]}); err != nil {
		t.Errorf("the pool does not hold the configured certificate: %v", err)
	}
}

// TestVerifierOptionsMirrors: registry.mirrors reaches the verifier, each
// mirror split into host and path prefix, in order.
func TestVerifierOptionsMirrors(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	cfg, err := policy.ParseConfig([]byte(head + "registry:\n  mirrors:\n    docker.io: [mirror.corp.example/dockerhub]\n    ghcr.io: [harbor.corp.example/ghcr-proxy, \"backup-mirror.corp.example:5000\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := mustVerifierOptions(t, cfg).Mirrors
	want := map[string][]verifier.Mirror{
		"docker.io": {{Host: "mirror.corp.example", Prefix: "dockerhub"}},
		"ghcr.io":   {{Host: "harbor.corp.example", Prefix: "ghcr-proxy"}, {Host: "backup-mirror.corp.example:5000"}},
	}
	if len(got) != len(want) {
		t.Fatalf("VerifierOptions().Mirrors = %v, want %v", got, want)
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("VerifierOptions().Mirrors[%q] = %v, want %v", k, got[k], w)
		}
	}
	if _, err := verifier.New(mustVerifierOptions(t, cfg)); err != nil {
		t.Errorf("verifier.New: %v", err)
	}
	cfg, err = policy.ParseConfig([]byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustVerifierOptions(t, cfg).Mirrors; got != nil {
		t.Errorf("VerifierOptions().Mirrors without mirrors = %v, want nil", got)
	}
}

func mustVerifierOptions(t *testing.T, cfg *policy.Config) verifier.Options {
	t.Helper()
	o, err := VerifierOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestCloudTransport: the exchanges with the clouds' token services use
// registry.proxy, except for the node's metadata and credential endpoints;
// without registry.proxy no proxy at all (not the environment's).
func TestCloudTransport(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://env-proxy.example:3128")
	proxy, _ := url.Parse("http://proxy.example:3128")
	for _, c := range []struct {
		proxy *url.URL
		url   string
		want  string
	}{
		{nil, "https://sts.eu-west-1.amazonaws.com/", ""},
		{proxy, "https://sts.eu-west-1.amazonaws.com/", "http://proxy.example:3128"},
		{proxy, "http://169.254.169.254/computeMetadata/v1/", ""},
		{proxy, "http://169.254.170.23/v1/credentials", ""},
		{proxy, "http://[fd00:ec2::23]/v1/credentials", "http://proxy.example:3128"},
		{proxy, "http://[fe80::1]/", ""},
		{proxy, "http://127.0.0.1:8080/", ""},
		{proxy, "http://localhost:8080/", ""},
	} {
		tr := cloudTransport(c.proxy).(*http.Transport)
		var got string
		if tr.Proxy != nil {
			req := httptest.NewRequest(http.MethodGet, c.url, nil)
			u, err := tr.Proxy(req)
			if err != nil {
				t.Fatal(err)
			}
			if u != nil {
				got = u.String()
			}
		}
		if got != c.want {
			t.Errorf("proxy %v, %s: through %q, want %q", c.proxy, c.url, got, c.want)
		}
	}
}

// TestVerifierOptionsCloudCredentials: without registry.cloudCredentials
// the gate's keychain is the docker keychain; with them, the docker
// keychain then the cloud's (or an error naming a provider this binary
// was built without).
func TestVerifierOptionsCloudCredentials(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	cfg, err := policy.ParseConfig([]byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if kc := mustVerifierOptions(t, cfg).Keychain; kc != authn.DefaultKeychain {
		t.Fatalf("without cloudCredentials the keychain is %T, want the docker keychain", kc)
	}
	for _, p := range cloudhost.Names {
		cfg, err := policy.ParseConfig([]byte(head + "registry: {cloudCredentials: [{provider: " + p + "}]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		o, err := VerifierOptions(cfg)
		if !slices.Contains(cloudauth.Built(), p) {
			if err == nil || !strings.Contains(err.Error(), "built without the "+p) {
				t.Errorf("%s left out of the build: %v", p, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if o.Keychain == authn.DefaultKeychain {
			t.Errorf("%s: keychain is the docker keychain alone", p)
		}
	}
}
