//go:build !signgate_no_google

package cloudauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

const googleTokenPath = "/computeMetadata/v1/instance/service-accounts/default/token"

// fakeMetadata is a GKE metadata server: it answers the token request
// with a new token each time, or with status and message when status is
// set, or with body when body is set.
type fakeMetadata struct {
	mu        sync.Mutex
	expiresIn int
	status    int
	message   string
	body      string
	tokens    int      // tokens issued
	requests  []string // paths requested
}

func (f *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.Path)
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "missing Metadata-Flavor: Google", http.StatusBadRequest)
		return
	}
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Method != http.MethodGet || r.URL.Path != googleTokenPath {
		http.NotFound(w, r)
		return
	}
	if got := r.URL.Query().Get("scopes"); got != googleScope {
		http.Error(w, "unexpected scopes "+got, http.StatusBadRequest)
		return
	}
	switch {
	case f.status != 0:
		http.Error(w, f.message, f.status)
	case f.body != "":
		fmt.Fprint(w, f.body)
	default:
		f.tokens++
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": fmt.Sprintf("ya29.token-%d", f.tokens),
			"expires_in":   f.expiresIn,
			"token_type":   "Bearer",
		})
	}
}

func (f *fakeMetadata) counts() (tokens, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens, len(f.requests)
}

// googleTestEnv clears every source of real Google credentials and points
// the metadata client at a fake metadata server on 127.0.0.1.
func googleTestEnv(t *testing.T) *fakeMetadata {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv(googleCredentialsEnv, "")
	os.Unsetenv(googleCredentialsEnv) // t.Setenv restores it
	f := &fakeMetadata{expiresIn: 3599}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv(googleMetadataHostEnv, strings.TrimPrefix(srv.URL, "http://"))
	return f
}

func newTestGoogle(t *testing.T, s Settings) Provider {
	t.Helper()
	p, err := newGoogle(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGoogleRegistered(t *testing.T) {
	if !slices.Contains(Built(), "google") {
		t.Fatalf("Built() = %v, want google", Built())
	}
	k, err := New(Options{Enabled: []Enabled{{Provider: "google"}}})
	if err != nil || k == nil {
		t.Fatalf("New(google) = %v, %v", k, err)
	}
	if got := k.Provider("europe-docker.pkg.dev"); got != "google" {
		t.Errorf("Provider(europe-docker.pkg.dev) = %q", got)
	}
}

func TestGoogleScope(t *testing.T) {
	p := newTestGoogle(t, Settings{})
	if p.Name() != "google" {
		t.Errorf("Name() = %q", p.Name())
	}
	for host, want := range map[string]bool{
		"gcr.io":                  true,
		"eu.gcr.io":               true,
		"europe-docker.pkg.dev":   true,
		"us-west1-docker.pkg.dev": true,
		"docker.io":               false,
		"gcr.io:443":              false,
		"myregistry.azurecr.io":   false,
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com": false,
	} {
		key, ok := p.Scope(host)
		if ok != want || key != "" {
			t.Errorf("Scope(%q) = %q, %v; want \"\", %v", host, key, ok, want)
		}
	}
}

// GKE Workload Identity: the token comes from the metadata server.
func TestGoogleWorkloadIdentity(t *testing.T) {
	f := googleTestEnv(t)
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	p := newTestGoogle(t, Settings{Clock: testingclock.NewFakeClock(start)})
	tok, err := p.Fetch(context.Background(), "europe-docker.pkg.dev")
	if err != nil {
		t.Fatal(err)
	}
	want := Token{Username: "oauth2accesstoken", Password: "ya29.token-1", Expires: start.Add(3599 * time.Second)}
	if tok != want {
		t.Errorf("Fetch = %+v, want %+v", tok, want)
	}
	// Only the token is asked for: no project ID, universe domain or
	// probe of the metadata server.
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.requests, []string{googleTokenPath}) {
		t.Errorf("metadata requests = %v, want only the token", f.requests)
	}
}

// Each Fetch exchanges anew: no token source reuses the last token.
func TestGoogleFetchIsFresh(t *testing.T) {
	f := googleTestEnv(t)
	p := newTestGoogle(t, Settings{})
	var got []string
	for range 2 {
		tok, err := p.Fetch(context.Background(), "gcr.io")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tok.Password)
		if d := time.Until(tok.Expires); d < 3500*time.Second || d > 3599*time.Second {
			t.Errorf("Expires in %v, want about 3599s", d)
		}
	}
	if !slices.Equal(got, []string{"ya29.token-1", "ya29.token-2"}) {
		t.Errorf("tokens = %v, want two fresh ones", got)
	}
	if n, _ := f.counts(); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}
}

func TestGoogleNoExpiry(t *testing.T) {
	f := googleTestEnv(t)
	f.expiresIn = 0
	tok, err := newTestGoogle(t, Settings{}).Fetch(context.Background(), "gcr.io")
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expires.IsZero() || tok.Password != "ya29.token-1" {
		t.Errorf("Fetch = %+v, want the token with zero Expires", tok)
	}
}

// Through the Keychain: one token serves every Google host until its
// refresh time, then exactly one exchange renews it.
func TestGoogleKeychain(t *testing.T) {
	f := googleTestEnv(t)
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	fc := testingclock.NewFakeClock(start)
	k := NewWith([]Provider{newTestGoogle(t, Settings{Clock: fc})}, Options{Settings: Settings{Clock: fc}})

	resolve := func(wantPassword string) {
		t.Helper()
		for _, host := range []string{"europe-docker.pkg.dev", "gcr.io"} {
			cfg := mustResolveAuth(t, k, host)
			if cfg == nil || cfg.Username != "oauth2accesstoken" || cfg.Password != wantPassword {
				t.Errorf("%s at %v: %s/%s, want oauth2accesstoken/%s", host, fc.Now(), cfg.Username, cfg.Password, wantPassword)
			}
		}
	}
	resolve("ya29.token-1")
	if n, _ := f.counts(); n != 1 {
		t.Fatalf("token requests = %d, want 1 for both hosts", n)
	}

	// The provider measures expires_in on Settings.Clock, so the
	// expiry, and the Keychain's refresh time, are exact.
	refresh := RefreshAt(start, start.Add(3599*time.Second))
	if refresh.Sub(start) < time.Minute {
		t.Fatalf("refresh %v after start: test needs a longer expires_in", refresh.Sub(start))
	}
	fc.SetTime(refresh.Add(-time.Second))
	resolve("ya29.token-1")
	if n, _ := f.counts(); n != 1 {
		t.Fatalf("before the refresh time: token requests = %d, want 1", n)
	}
	fc.SetTime(refresh)
	resolve("ya29.token-2")
	if n, _ := f.counts(); n != 2 {
		t.Fatalf("after the refresh time: token requests = %d, want 2", n)
	}
}

// A metadata server without the gate's identity, or refusing it: the
// error names the problem and what to do, and holds no secret.
func TestGoogleMetadataErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		message string
		body    string
		want    []string
	}{
		{name: "404", status: http.StatusNotFound, message: "not found",
			want: []string{"no Google credentials", "404", "iam.gke.io/gcp-service-account", googleCredentialsEnv}},
		{name: "403", status: http.StatusForbidden, message: "Unable to generate access token; IAM returned 403 Forbidden: Permission 'iam.serviceAccounts.getAccessToken' denied",
			want: []string{"no Google credentials", "403", "iam.serviceAccounts.getAccessToken", "roles/iam.workloadIdentityUser"}},
		{name: "502 after retries", status: http.StatusBadGateway, message: "upstream",
			want: []string{"502", "upstream"}},
		{name: "malformed", body: `{"access_token":"ya29.secret-token","expires_in":"soon"}`,
			want: []string{"no valid JSON"}},
		{name: "no token", body: `{"expires_in":3599}`,
			want: []string{"without an access token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := googleTestEnv(t)
			f.status, f.message, f.body = tc.status, tc.message, tc.body
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tok, err := newTestGoogle(t, Settings{}).Fetch(ctx, "gcr.io")
			if err == nil {
				t.Fatalf("Fetch = %+v, want an error", tok)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "ya29") || strings.Contains(msg, "secret") {
				t.Errorf("error %q holds a token", msg)
			}
		})
	}
}

// No metadata server at all (the address refuses connections).
func TestGoogleNoMetadataServer(t *testing.T) {
	googleTestEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	t.Setenv(googleMetadataHostEnv, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := newTestGoogle(t, Settings{}).Fetch(ctx, "gcr.io")
	if err == nil {
		t.Fatal("Fetch succeeded without a metadata server")
	}
	t.Log(err)
	for _, w := range []string{"no Google credentials", addr, "GKE Workload Identity", googleCredentialsEnv} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestGoogleCredentialsFileMissing(t *testing.T) {
	f := googleTestEnv(t)
	missing := filepath.Join(t.TempDir(), "nonexistent.json")
	t.Setenv(googleCredentialsEnv, missing)
	_, err := newTestGoogle(t, Settings{}).Fetch(context.Background(), "gcr.io")
	if err == nil {
		t.Fatal("Fetch succeeded with a missing credentials file")
	}
	t.Log(err)
	for _, w := range []string{googleCredentialsEnv, missing, "no such file", "mount the file"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if _, n := f.counts(); n != 0 {
		t.Errorf("metadata requests = %d, want none when %s is set", n, googleCredentialsEnv)
	}
}

// A service account key file: its token endpoint is called through
// Settings.Transport, afresh on each Fetch.
func TestGoogleCredentialsFile(t *testing.T) {
	f := googleTestEnv(t)
	var issued atomic.Int32
	var refuse atomic.Bool
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
			return
		}
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"ya29.file-%d","expires_in":3599,"token_type":"Bearer"}`, n)
	}))
	defer tokenSrv.Close()

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "gate@test-project.iam.gserviceaccount.com",
		"token_uri":      tokenSrv.URL + "/token",
	})
	file := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(file, cred, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(googleCredentialsEnv, file)

	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := &countingTransport{}
	p := newTestGoogle(t, Settings{Transport: tr, Clock: testingclock.NewFakeClock(start)})
	for i := 1; i <= 2; i++ {
		tok, err := p.Fetch(context.Background(), "gcr.io")
		if err != nil {
			t.Fatal(err)
		}
		if tok.Username != "oauth2accesstoken" || tok.Password != fmt.Sprintf("ya29.file-%d", i) {
			t.Errorf("Fetch %d = %s/%s", i, tok.Username, tok.Password)
		}
		// The lifetime is kept on Settings.Clock.
		if life := tok.Expires.Sub(start); life < 3500*time.Second || life > 3599*time.Second {
			t.Errorf("Fetch %d: expires %v after the clock's now, want about 3599s", i, life)
		}
	}
	if got := tr.n.Load(); got != 2 {
		t.Errorf("requests through Settings.Transport = %d, want 2", got)
	}
	if _, n := f.counts(); n != 0 {
		t.Errorf("metadata requests = %d, want none", n)
	}

	// A token endpoint refusing the key: a clear error.
	refuse.Store(true)
	_, err = p.Fetch(context.Background(), "gcr.io")
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "Invalid JWT Signature") || !strings.Contains(err.Error(), googleCredentialsEnv) {
		t.Errorf("Fetch with a refused key: %v", err)
	}
}
