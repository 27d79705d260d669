//go:build !signgate_no_ecr

package cloudauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

const (
	testRoleARN      = "arn:aws:iam::123456789012:role/signgate"
	testWebIdentity  = "eyJhbGciOiJSUzI1NiJ9.web-identity-token-SECRET.sig"
	testAccessKeyID  = "ASIATESTACCESSKEYID1"
	testSecretKey    = "secret-access-key-SECRET"
	testSessionToken = "session-token-SECRET"
	testECRPassword  = "ecr-password-SECRET"
	testECRHost      = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
)

// fakeSTS answers AssumeRoleWithWebIdentity (awsQuery) when the form
// carries the role ARN and the token of the web identity token file.
type fakeSTS struct {
	deny  bool
	calls atomic.Int32
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.deny || r.Method != http.MethodPost ||
		r.PostForm.Get("Action") != "AssumeRoleWithWebIdentity" ||
		r.PostForm.Get("RoleArn") != testRoleARN ||
		r.PostForm.Get("WebIdentityToken") != testWebIdentity {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:signgate:signgate</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/signgate/session</Arn>
      <AssumedRoleId>AROATEST:session</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, testAccessKeyID, testSecretKey, testSessionToken, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

// fakeECR answers GetAuthorizationToken (awsJson1_1) when the request is
// SigV4-signed, for ECR, with the credentials STS returned.
type fakeECR struct {
	body  string // the response; default a token for AWS:testECRPassword
	calls atomic.Int32

	mu      sync.Mutex
	regions []string // of the signatures' credential scopes
}

var testECRExpiry = time.Unix(time.Now().Add(12*time.Hour).Unix(), 0)

func (f *fakeECR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	auth := r.Header.Get("Authorization")
	wantScope := "Credential=" + testAccessKeyID + "/"
	switch {
	case r.Method != http.MethodPost,
		r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1"):
		http.Error(w, "not GetAuthorizationToken", http.StatusBadRequest)
		return
	case !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 "), !strings.Contains(auth, wantScope),
		!strings.Contains(auth, "/ecr/aws4_request"), !strings.Contains(auth, "Signature="),
		r.Header.Get("X-Amz-Security-Token") != testSessionToken:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
		return
	}
	scope, _, _ := strings.Cut(strings.TrimPrefix(auth[strings.Index(auth, wantScope):], wantScope), ",")
	if parts := strings.Split(scope, "/"); len(parts) == 4 {
		f.mu.Lock()
		f.regions = append(f.regions, parts[1])
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if f.body != "" {
		io.WriteString(w, f.body)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + testECRPassword)),
			"expiresAt":          testECRExpiry.Unix(),
			"proxyEndpoint":      "https://" + testECRHost,
		}},
	})
}

// setAWSEnv configures IRSA against the fakes and clears every other
// source of AWS configuration.
func setAWSEnv(t *testing.T, stsURL, ecrURL string) {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	for _, f := range []string{tokenFile, empty} {
		content := ""
		if f == tokenFile {
			content = testWebIdentity
		}
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_ROLE_SESSION_NAME", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
		"AWS_STS_REGIONAL_ENDPOINTS", "AWS_CA_BUNDLE", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
	} {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ROLE_ARN", testRoleARN)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ENDPOINT_URL_STS", stsURL)
	t.Setenv("AWS_ENDPOINT_URL_ECR", ecrURL)
}

type ecrFakes struct {
	sts *fakeSTS
	ecr *fakeECR
}

func startECRFakes(t *testing.T) ecrFakes {
	t.Helper()
	f := ecrFakes{sts: &fakeSTS{}, ecr: &fakeECR{}}
	stsSrv := httptest.NewServer(f.sts)
	t.Cleanup(stsSrv.Close)
	ecrSrv := httptest.NewServer(f.ecr)
	t.Cleanup(ecrSrv.Close)
	setAWSEnv(t, stsSrv.URL, ecrSrv.URL)
	return f
}

func newTestECR(t *testing.T, s Settings) Provider {
	t.Helper()
	p, err := factories[cloudhost.ECR](s)
	if err != nil {
		t.Fatalf("constructing the ecr provider: %v", err)
	}
	return p
}

func TestECRFetchIRSA(t *testing.T) {
	f := startECRFakes(t)
	tr := &countingTransport{}
	p := newTestECR(t, Settings{Transport: tr})
	if f.sts.calls.Load() != 0 || tr.n.Load() != 0 {
		t.Fatalf("construction made requests: sts %d, transport %d", f.sts.calls.Load(), tr.n.Load())
	}
	if p.Name() != "ecr" {
		t.Errorf("Name() = %q", p.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := p.Fetch(ctx, testECRHost)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if tok.Username != "AWS" || tok.Password != testECRPassword || !tok.Expires.Equal(testECRExpiry) {
		t.Errorf("Fetch = {%q, %q, %v}; want {AWS, %q, %v}", tok.Username, tok.Password, tok.Expires, testECRPassword, testECRExpiry)
	}
	if f.sts.calls.Load() != 1 || f.ecr.calls.Load() != 1 {
		t.Errorf("calls: sts %d, ecr %d; want 1, 1", f.sts.calls.Load(), f.ecr.calls.Load())
	}
	if tr.n.Load() != 2 {
		t.Errorf("Settings.Transport carried %d requests; want 2 (STS and ECR)", tr.n.Load())
	}

	// Another region of the same identity: a second client, the AWS
	// credentials are reused.
	if _, err := p.Fetch(ctx, "123456789012.dkr.ecr.us-east-2.amazonaws.com"); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if f.sts.calls.Load() != 1 {
		t.Errorf("STS called %d times; the SDK should cache the role credentials", f.sts.calls.Load())
	}
	f.ecr.mu.Lock()
	regions := strings.Join(f.ecr.regions, ",")
	f.ecr.mu.Unlock()
	if regions != "eu-west-1,us-east-2" {
		t.Errorf("ECR signed for regions %s; want eu-west-1,us-east-2 (the registries' regions)", regions)
	}
}

func TestECRKeychain(t *testing.T) {
	f := startECRFakes(t)
	p := newTestECR(t, Settings{})
	k := NewWith([]Provider{p}, Options{})
	for i := range 2 {
		cfg := mustResolveAuth(t, k, testECRHost)
		if cfg == nil || cfg.Username != "AWS" || cfg.Password != testECRPassword {
			t.Errorf("resolve %d: %q/%q; want AWS/%q", i, cfg.Username, cfg.Password, testECRPassword)
		}
	}
	if n := f.ecr.calls.Load(); n != 1 {
		t.Errorf("ECR called %d times; want 1 (the second resolve is cached)", n)
	}
	if got := k.Provider(testECRHost); got != "ecr" {
		t.Errorf("Provider(%s) = %q", testECRHost, got)
	}
	// Other hosts are anonymous.
	if cfg := mustResolveAuth(t, k, "gcr.io"); cfg != nil {
		t.Errorf("gcr.io got credentials %q", cfg.Username)
	}
}

func TestECRSTSDenied(t *testing.T) {
	f := startECRFakes(t)
	f.sts.deny = true
	p := newTestECR(t, Settings{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := p.Fetch(ctx, testECRHost)
	if err == nil {
		t.Fatal("Fetch succeeded with STS denying")
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	for _, want := range []string{"STS", "AccessDenied", testRoleARN, "trust policy", "service account"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "SECRET") || strings.Contains(msg, testWebIdentity) {
		t.Errorf("error leaks a secret: %q", msg)
	}
	if n := f.ecr.calls.Load(); n != 0 {
		t.Errorf("ECR called %d times without credentials", n)
	}
}

func TestECRMalformedAuthorizationData(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"empty", `{"authorizationData":[]}`, "no authorization data"},
		{"no token", `{"authorizationData":[{"expiresAt":1}]}`, "no authorization data"},
		{"not base64", `{"authorizationData":[{"authorizationToken":"!!ecr-password-SECRET!!"}]}`, "not base64"},
		{"no colon", fmt.Sprintf(`{"authorizationData":[{"authorizationToken":%q}]}`, base64.StdEncoding.EncodeToString([]byte("ecr-password-SECRET"))), "not user:password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startECRFakes(t)
			f.ecr.body = tc.body
			p := newTestECR(t, Settings{})
			_, err := p.Fetch(context.Background(), testECRHost)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch error %v; want one with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks the token: %q", err)
			}
		})
	}
}

func TestECRNoCredentials(t *testing.T) {
	startECRFakes(t)
	os.Unsetenv("AWS_ROLE_ARN") // restored by t.Setenv's cleanup
	os.Unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE")
	p := newTestECR(t, Settings{})
	_, err := p.Fetch(context.Background(), testECRHost)
	if err == nil || !strings.Contains(err.Error(), "no AWS credentials") || !strings.Contains(err.Error(), "IRSA") {
		t.Fatalf("Fetch error %v; want one saying there are no AWS credentials", err)
	}
}

func TestECRScope(t *testing.T) {
	p := &ecrProvider{}
	for _, tc := range []struct {
		host, key string
		ok        bool
	}{
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "eu-west-1", true},
		{"210987654321.dkr.ecr.eu-west-1.amazonaws.com", "eu-west-1", true}, // one token per region, any account
		{"123456789012.dkr.ecr.us-east-2.amazonaws.com", "us-east-2", true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1", true},
		{"public.ecr.aws", "", false},
		{"gcr.io", "", false},
		{"myregistry.azurecr.io", "", false},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", "", false},
	} {
		key, ok := p.Scope(tc.host)
		if key != tc.key || ok != tc.ok {
			t.Errorf("Scope(%q) = %q, %v; want %q, %v", tc.host, key, ok, tc.key, tc.ok)
		}
	}
}

// TestECRClientsPerRegion: one client per region, safe for concurrent use.
func TestECRClientsPerRegion(t *testing.T) {
	startECRFakes(t)
	p := newTestECR(t, Settings{}).(*ecrProvider)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p.client([]string{"eu-west-1", "us-east-1"}[i%2])
		})
	}
	wg.Wait()
	if len(p.clients) != 2 || p.client("eu-west-1") != p.clients["eu-west-1"] {
		t.Errorf("clients: %v", p.clients)
	}
}

// AWS_CA_BUNDLE (an extra CA for AWS endpoints) works with the gate's
// transport: the SDK adds a bundle only to its own client, which the
// provider builds from the transport's settings.
func TestECRCABundle(t *testing.T) {
	startECRFakes(t)
	tls := httptest.NewTLSServer(http.NotFoundHandler())
	defer tls.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tls.Certificate().Raw})
	if err := os.WriteFile(bundle, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	p := newTestECR(t, Settings{Transport: http.DefaultTransport.(*http.Transport).Clone()})
	tok, err := p.Fetch(t.Context(), testECRHost)
	if err != nil || tok.Username != "AWS" {
		t.Fatalf("Fetch with AWS_CA_BUNDLE: %+v, %v", tok, err)
	}
}

// Regions come from tenants' image names: the clients kept are bounded.
func TestECRClientsBounded(t *testing.T) {
	startECRFakes(t)
	p := newTestECR(t, Settings{}).(*ecrProvider)
	for i := range 2 * maxECRClients {
		if p.client(fmt.Sprintf("xx-test-%d", i)) == nil {
			t.Fatal("no client")
		}
	}
	p.mu.Lock()
	n := len(p.clients)
	p.mu.Unlock()
	if n > maxECRClients {
		t.Fatalf("%d region clients kept, bound %d", n, maxECRClients)
	}
}
