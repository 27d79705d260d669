//go:build !signgate_no_google

package cloudauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"k8s.io/utils/clock"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

// Google Artifact Registry and Container Registry accept an OAuth 2.0
// access token of the gate's Google identity as the password of the user
// "oauth2accesstoken".
const (
	googleUsername = "oauth2accesstoken"
	googleScope    = "https://www.googleapis.com/auth/cloud-platform"
	// googleCredentialsEnv is Application Default Credentials' file: a
	// workload identity federation configuration or a service account key.
	googleCredentialsEnv = "GOOGLE_APPLICATION_CREDENTIALS"
	// googleMetadataHostEnv overrides the metadata server's address (as
	// package metadata reads it).
	googleMetadataHostEnv = "GCE_METADATA_HOST"
	googleMetadataIP      = "169.254.169.254"
	// googleWorkloadIdentity is what to do when the gate has no Google
	// identity.
	googleWorkloadIdentity = "set up GKE Workload Identity (the annotation iam.gke.io/gcp-service-account on the gate's Kubernetes service account, and roles/iam.workloadIdentityUser for it on that Google service account, which needs roles/artifactregistry.reader), or set " + googleCredentialsEnv + " to a workload identity federation configuration or a service account key file"
)

func init() { register(cloudhost.Google, newGoogle) }

// googleProvider exchanges the gate's Google identity for an access token,
// as Application Default Credentials find it: the file named by
// GOOGLE_APPLICATION_CREDENTIALS (workload identity federation or a key),
// else gcloud's application_default_credentials.json, else the metadata
// server (GKE Workload Identity, or the node's service account on GCE).
//
// Every Fetch exchanges anew: the Keychain decides when to refresh, so
// nothing here caches a token. The file is read and its token source
// built per Fetch (oauth2's sources are wrapped in a ReuseTokenSource,
// which would hand back the same token until 10 seconds before it
// expires), and the metadata server is asked directly.
//
// Where the HTTP calls go:
//   - Credentials files (google.FindDefaultCredentialsWithParams): every
//     request of the oauth2 library (the token endpoint of a key, STS and
//     IAM Credentials of workload identity federation, and a federation
//     configuration's url or aws credential_source) uses the http.Client
//     of the oauth2.HTTPClient context value: Settings.Transport.
//   - The metadata server: package metadata's default client, not
//     Settings.Transport. The server is node-local (169.254.169.254,
//     intercepted by GKE's gke-metadata-server), which a registry proxy
//     cannot reach, and the library never proxies it either (its
//     transport has no Proxy). It is asked without google's
//     computeTokenSource because that source ignores the context (the
//     Keychain's timeout could not bound it) and because
//     FindDefaultCredentials decides "on GCE" once per process
//     (metadata.OnGCE is memoized): a gate that started before the GKE
//     metadata server was ready would never get a token.
type googleProvider struct {
	client *http.Client // Settings.Transport, for the oauth2 library
	clock  clock.PassiveClock
}

func newGoogle(s Settings) (Provider, error) {
	t := s.Transport
	if t == nil {
		t = http.DefaultTransport
	}
	c := s.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	return &googleProvider{client: &http.Client{Transport: t}, clock: c}, nil
}

func (p *googleProvider) Name() string { return cloudhost.Google }

// Scope implements Provider: one access token serves every Google
// registry host.
func (p *googleProvider) Scope(host string) (string, bool) {
	return "", cloudhost.Provider(host) == cloudhost.Google
}

// Fetch implements Provider.
func (p *googleProvider) Fetch(ctx context.Context, _ string) (Token, error) {
	if file := os.Getenv(googleCredentialsEnv); file != "" {
		return p.fromFile(ctx, fmt.Sprintf("%s=%s", googleCredentialsEnv, file))
	}
	if file := googleWellKnownFile(); file != "" {
		if _, err := os.Stat(file); err == nil {
			return p.fromFile(ctx, file)
		}
	}
	return p.fromMetadata(ctx)
}

// fromFile exchanges the credentials file Application Default Credentials
// find (source names it for errors).
func (p *googleProvider) fromFile(ctx context.Context, source string) (Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.client)
	creds, err := google.FindDefaultCredentialsWithParams(ctx, google.CredentialsParams{Scopes: []string{googleScope}})
	if err != nil {
		// The library's errors name the file and the parse or read error,
		// never the file's contents.
		return Token{}, fmt.Errorf("reading Google credentials (%s): %v; mount the file into the gate's pod and make it a workload identity federation configuration (gcloud iam workload-identity-pools create-cred-config) or a service account key, or unset %s to use GKE Workload Identity", source, err, googleCredentialsEnv)
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		// oauth2's errors carry the token service's error response, which
		// holds no token, on a second line.
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		return Token{}, fmt.Errorf("exchanging the Google credentials (%s) for an access token: %s; check the configuration's audience and service account impersonation, and that the identity may use the service account (roles/iam.workloadIdentityUser)", source, msg)
	}
	if tok.AccessToken == "" {
		return Token{}, fmt.Errorf("exchanging the Google credentials (%s): the token service returned no access token", source)
	}
	t := Token{Username: googleUsername, Password: tok.AccessToken}
	if !tok.Expiry.IsZero() {
		// oauth2 sets Expiry by the real clock; the Keychain measures by
		// Settings.Clock: keep the lifetime, not the instant. (Measured
		// after the clock's now, so the lifetime errs short.)
		now := p.clock.Now()
		t.Expires = now.Add(time.Until(tok.Expiry))
	}
	return t, nil
}

// fromMetadata asks the metadata server for the token of the pod's Google
// service account (GKE Workload Identity) or the node's (GCE), with the
// request google's computeTokenSource makes.
func (p *googleProvider) fromMetadata(ctx context.Context) (Token, error) {
	host := os.Getenv(googleMetadataHostEnv)
	if host == "" {
		host = googleMetadataIP
	}
	suffix := "instance/service-accounts/default/token?" + url.Values{"scopes": {googleScope}}.Encode()
	now := p.clock.Now()
	body, err := metadata.GetWithContext(ctx, suffix)
	if err != nil {
		return Token{}, googleMetadataError(host, err)
	}
	var res struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	// The error of a malformed answer is not returned: it could quote a
	// part of the token.
	if json.Unmarshal([]byte(body), &res) != nil {
		return Token{}, fmt.Errorf("the Google metadata server at %s answered the token request with no valid JSON; is %s a metadata server?", host, host)
	}
	if res.AccessToken == "" {
		return Token{}, fmt.Errorf("the Google metadata server at %s answered the token request without an access token", host)
	}
	t := Token{Username: googleUsername, Password: res.AccessToken}
	if res.ExpiresIn > 0 {
		t.Expires = now.Add(time.Duration(res.ExpiresIn) * time.Second)
	}
	return t, nil
}

// googleMetadataError explains a failed metadata token request.
func googleMetadataError(host string, err error) error {
	var notDefined metadata.NotDefinedError
	var merr *metadata.Error
	switch {
	case errors.As(err, &notDefined):
		return fmt.Errorf("no Google credentials: the metadata server at %s has no service account for the gate (404 for instance/service-accounts/default/token); %s", host, googleWorkloadIdentity)
	case errors.As(err, &merr) && merr.Code == http.StatusForbidden:
		return fmt.Errorf("no Google credentials: the metadata server at %s refused an access token (403: %s); check that the Google service account named by iam.gke.io/gcp-service-account on the gate's Kubernetes service account exists and grants that Kubernetes service account roles/iam.workloadIdentityUser", host, googleClip(merr.Message))
	case errors.As(err, &merr):
		return fmt.Errorf("the Google metadata server at %s answered the token request with %d: %s", host, merr.Code, googleClip(merr.Message))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("no Google credentials: no answer from a metadata server at %s (%v); not on GKE or GCE? %s", host, err, googleWorkloadIdentity)
	default:
		return fmt.Errorf("no Google credentials: no metadata server at %s (%v); not on GKE or GCE? %s", host, err, googleWorkloadIdentity)
	}
}

// googleClip shortens a server's error message for an error.
func googleClip(s string) string {
	const n = 300
	s = strings.TrimSpace(s)
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// googleWellKnownFile is where gcloud writes application default
// credentials, as package google looks for it ("" when there is no home).
func googleWellKnownFile() string {
	const f = "application_default_credentials.json"
	if runtime.GOOS == "windows" {
		if d := os.Getenv("APPDATA"); d != "" {
			return filepath.Join(d, "gcloud", f)
		}
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".config", "gcloud", f)
}
