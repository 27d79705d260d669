//go:build !signgate_no_azure

package cloudauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

const (
	testTenant       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClientID     = "11111111-2222-3333-4444-555555555555"
	testAssertion    = "federated-service-account-token"
	testAccessToken  = "entra-access-token-for-acr"
	testRegistryHost = "myregistry.azurecr.io"
)

// fakeAzure is a Microsoft Entra ID and an ACR token exchange on
// 127.0.0.1.
type fakeAzure struct {
	entra, acr *httptest.Server
	transport  *http.Transport
	// refreshToken is what the exchange returns; exchangeStatus, when not
	// 200, is its error status instead.
	refreshToken   string
	exchangeStatus int
	tokenRequests  atomic.Int32
	exchanges      atomic.Int32
}

func newFakeAzure(t *testing.T) *fakeAzure {
	t.Helper()
	f := &fakeAzure{exchangeStatus: http.StatusOK}

	entra := http.NewServeMux()
	entra.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/" + r.PathValue("tenant")
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                 base + "/v2.0",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/oauth2/v2.0/token",
		})
	})
	entra.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		f.tokenRequests.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch {
		case r.PathValue("tenant") != testTenant,
			r.PostForm.Get("grant_type") != "client_credentials",
			r.PostForm.Get("client_id") != testClientID,
			r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			r.PostForm.Get("client_assertion") != testAssertion,
			!slices.Contains(strings.Fields(r.PostForm.Get("scope")), acrScope):
			writeJSON(w, http.StatusUnauthorized, map[string]any{
				"error":             "invalid_client",
				"error_description": "AADSTS700213: No matching federated identity record found",
			})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"token_type":     "Bearer",
			"expires_in":     3600,
			"ext_expires_in": 3600,
			"access_token":   testAccessToken,
		})
	})
	f.entra = httptest.NewTLSServer(entra)
	t.Cleanup(f.entra.Close)

	acr := http.NewServeMux()
	acr.HandleFunc("POST /oauth2/exchange", func(w http.ResponseWriter, r *http.Request) {
		f.exchanges.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.exchangeStatus != http.StatusOK {
			// A registry that echoes the token it refused: the error must
			// not carry it on.
			writeJSON(w, f.exchangeStatus, map[string]any{"errors": []map[string]string{{
				"code":    "UNAUTHORIZED",
				"message": "access token " + r.PostForm.Get("access_token") + " is not authorized",
			}}})
			return
		}
		switch {
		case r.PostForm.Get("grant_type") != "access_token",
			r.PostForm.Get("service") != testRegistryHost,
			r.PostForm.Get("tenant") != testTenant,
			r.PostForm.Get("access_token") != testAccessToken:
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "bad exchange " + r.PostForm.Encode()}}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"refresh_token": f.refreshToken})
	})
	f.acr = httptest.NewTLSServer(acr)
	t.Cleanup(f.acr.Close)

	pool := x509.NewCertPool()
	pool.AddCert(f.entra.Certificate())
	pool.AddCert(f.acr.Certificate())
	f.transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(f.transport.CloseIdleConnections)
	return f
}

// workloadEnv sets the environment the AKS workload identity webhook
// injects, with the federated token file holding testAssertion.
func (f *fakeAzure) workloadEnv(t *testing.T) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(testAssertion), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAzureClientID, testClientID)
	t.Setenv(envAzureTenantID, testTenant)
	t.Setenv(envAzureFederatedToken, file)
	t.Setenv("AZURE_AUTHORITY_HOST", f.entra.URL+"/")
}

func (f *fakeAzure) provider(t *testing.T) *azureProvider {
	t.Helper()
	p, err := newAzure(Settings{Transport: f.transport}, azureOptions{
		disableInstanceDiscovery: true,
		exchangeURL:              func(string) string { return f.acr.URL + "/oauth2/exchange" },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// testJWT is an unsigned JWT with the given claims.
func testJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(b) + ".c2lnbmF0dXJl"
}

func TestAzureRegistered(t *testing.T) {
	if factories[cloudhost.Azure] == nil || !slices.Contains(Built(), cloudhost.Azure) {
		t.Fatalf("azure provider not registered: Built() = %v", Built())
	}
}

func TestAzureWorkloadIdentity(t *testing.T) {
	f := newFakeAzure(t)
	f.workloadEnv(t)
	exp := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	f.refreshToken = testJWT(t, map[string]any{"exp": exp.Unix(), "grant_type": "refresh_token", "tenant": testTenant})
	p := f.provider(t)
	if !p.workload {
		t.Fatal("the workload identity environment did not select the workload identity")
	}
	if p.Name() != "azure" {
		t.Errorf("Name() = %q", p.Name())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := p.Fetch(ctx, "MyRegistry.azurecr.io")
	if err != nil {
		t.Fatal(err)
	}
	want := Token{Username: "00000000-0000-0000-0000-000000000000", Password: f.refreshToken, Expires: exp}
	if tok.Username != want.Username || tok.Password != want.Password || !tok.Expires.Equal(want.Expires) {
		t.Errorf("Fetch = %+v, want %+v", tok, want)
	}
	if n := f.exchanges.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
}

func TestAzureWorkloadIdentityWrongAssertion(t *testing.T) {
	f := newFakeAzure(t)
	f.workloadEnv(t)
	if err := os.WriteFile(os.Getenv(envAzureFederatedToken), []byte("some-other-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := f.provider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.Fetch(ctx, testRegistryHost)
	if err == nil {
		t.Fatal("Fetch succeeded with an assertion Entra does not accept")
	}
	t.Log(err)
	for _, s := range []string{"workload identity", testClientID, "federated credential"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "some-other-token") {
		t.Errorf("error %q contains the service account token", err)
	}
	if n := f.exchanges.Load(); n != 0 {
		t.Errorf("%d exchanges without an access token", n)
	}
}

func TestAzureExchangeUnauthorized(t *testing.T) {
	f := newFakeAzure(t)
	f.workloadEnv(t)
	f.exchangeStatus = http.StatusUnauthorized
	p := f.provider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.Fetch(ctx, testRegistryHost)
	if err == nil {
		t.Fatal("Fetch succeeded though the exchange answered 401")
	}
	t.Log(err)
	msg := err.Error()
	for _, s := range []string{"401 Unauthorized", "/oauth2/exchange", "AcrPull"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not mention %q", msg, s)
		}
	}
	for _, secret := range []string{testAccessToken, testAssertion} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains a token", msg)
		}
	}
	if n := f.exchanges.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
}

func TestAzureExpiryFallsBackToAccessToken(t *testing.T) {
	for name, refresh := range map[string]string{
		"opaque":   "not-a-jwt",
		"no exp":   testJWT(t, map[string]any{"grant_type": "refresh_token"}),
		"bad exp":  testJWT(t, map[string]any{"exp": "tomorrow"}),
		"bad json": "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAzure(t)
			f.workloadEnv(t)
			f.refreshToken = refresh
			p := f.provider(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			before := time.Now()
			tok, err := p.Fetch(ctx, testRegistryHost)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Password != refresh {
				t.Errorf("Password = %q, want %q", tok.Password, refresh)
			}
			// The access token expires in 3600 s.
			lo, hi := before.Add(time.Hour-time.Minute), time.Now().Add(time.Hour+time.Minute)
			if tok.Expires.Before(lo) || tok.Expires.After(hi) {
				t.Errorf("Expires = %v, want the access token's expiry, about %v", tok.Expires, before.Add(time.Hour))
			}
		})
	}
}

func TestAzureScope(t *testing.T) {
	f := newFakeAzure(t)
	f.workloadEnv(t)
	p := f.provider(t)
	key, ok := p.Scope(testRegistryHost)
	if !ok || key != testRegistryHost {
		t.Fatalf("Scope(%q) = %q, %v", testRegistryHost, key, ok)
	}
	if k, ok := p.Scope("MyRegistry.AzureCR.io"); !ok || k != key {
		t.Errorf("Scope of the upper-case host = %q, %v; want %q", k, ok, key)
	}
	if k, ok := p.Scope("other.azurecr.io"); !ok || k == key {
		t.Errorf("Scope(other.azurecr.io) = %q, %v; want another key than %q", k, ok, key)
	}
	if _, ok := p.Scope("myregistry.azurecr.cn"); !ok {
		t.Error("Scope(myregistry.azurecr.cn) not ok")
	}
	for _, h := range []string{"example.com", "gcr.io", "europe-docker.pkg.dev", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "myregistry.azurecr.io:443", "azurecr.io", ""} {
		if k, ok := p.Scope(h); ok {
			t.Errorf("Scope(%q) = %q, true; want not ok", h, k)
		}
	}
}

func TestAzureIncompleteWorkloadIdentity(t *testing.T) {
	t.Setenv(envAzureFederatedToken, filepath.Join(t.TempDir(), "token"))
	t.Setenv(envAzureTenantID, testTenant)
	t.Setenv(envAzureClientID, "")
	_, err := newAzure(Settings{}, azureOptions{})
	if err == nil {
		t.Fatal("newAzure succeeded without AZURE_CLIENT_ID")
	}
	t.Log(err)
	for _, s := range []string{envAzureClientID, "azure.workload.identity/client-id", `azure.workload.identity/use: "true"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestAzureManagedIdentityFallback(t *testing.T) {
	t.Setenv(envAzureFederatedToken, "")
	t.Setenv(envAzureClientID, "")
	// Constructing the managed identity asks nothing of the network.
	p, err := New(Options{Enabled: []Enabled{{Provider: cloudhost.Azure}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Provider(testRegistryHost); got != cloudhost.Azure {
		t.Errorf("Provider(%q) = %q", testRegistryHost, got)
	}
	ap, ok := p.providers[0].Provider.(*azureProvider)
	if !ok || ap.workload {
		t.Errorf("provider = %#v, want the managed identity", p.providers[0].Provider)
	}
}

func TestJWTExpiry(t *testing.T) {
	exp := time.Unix(1893456000, 0)
	for _, c := range []struct {
		token string
		want  time.Time
		ok    bool
	}{
		{testJWT(t, map[string]any{"exp": exp.Unix()}), exp, true},
		{testJWT(t, map[string]any{"exp": 1893456000.0}), exp, true},
		{testJWT(t, map[string]any{"exp": 0}), time.Time{}, false},
		{testJWT(t, map[string]any{"exp": -5}), time.Time{}, false},
		{testJWT(t, map[string]any{"iat": 1}), time.Time{}, false},
		{"a.b", time.Time{}, false},
		{"a.!!!.c", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, ok := jwtExpiry(c.token)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("jwtExpiry(%q) = %v, %v; want %v, %v", c.token, got, ok, c.want, c.ok)
		}
	}
}
