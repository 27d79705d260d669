//go:build e2e

package harness

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Sigstore is a private Sigstore on 127.0.0.1, what a team signing in CI
// uses: an OIDC issuer that mints GitHub-Actions-like ID tokens (served by
// the harness itself), Fulcio with an ephemeral CA issuing certificates
// for that issuer's tokens as GitHub's ci-provider templates do, an
// RFC 3161 timestamp authority and a Rekor v2 (tiles) transparency log;
// plus the trusted_root.json naming all of them, made by `cosign
// trusted-root create`, and a signing config for `cosign sign`.
type Sigstore struct {
	IssuerURL string // the OIDC issuer: the certificates' issuer
	FulcioURL string
	TSAURL    string // the timestamp endpoint, …/api/v1/timestamp
	RekorURL  string

	TrustedRoot       []byte // trusted_root.json
	TrustedRootPath   string
	SigningConfigPath string

	// The same deployment without its transparency log: Fulcio and the
	// TSA only. Signatures made with it carry no log entry.
	NoLogTrustedRoot       []byte
	NoLogTrustedRootPath   string
	NoLogSigningConfigPath string

	key *rsa.PrivateKey // signs ID tokens
}

// Workflow is a CI run's identity as GitHub Actions puts it in an ID
// token: Fulcio makes the certificate's subject
// https://github.com/<Repository>/<Path>@<Ref> and its extensions from it.
type Workflow struct {
	Repository string // owner/repo
	Path       string // .github/workflows/release.yml
	Ref        string // refs/heads/main
}

// Subject is the certificate subject (SAN URI) Fulcio issues for w.
func (w Workflow) Subject() string {
	return "https://github.com/" + w.Repository + "/" + w.Path + "@" + w.Ref
}

// The rekor-tiles checkpoint origin, the log's host name.
const rekorOrigin = "127.0.0.1"

// StartSigstore starts the issuer, Fulcio, the TSA and Rekor under dir
// and writes the trusted root and signing config there. cosign3 is a
// cosign v3 (`trusted-root create`). Everything started is registered
// with tb for teardown.
//
// The timestamp server always serves its metrics on :2112 (not
// configurable in timestamp-authority v2.1.3): Sigstores of concurrent
// suites on one machine take turns through a lock file
// (lockTSAMetricsPort).
func StartSigstore(ctx context.Context, tb TB, bins Binaries, dir string) (*Sigstore, error) {
	dir = filepath.Join(dir, "sigstore")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start sigstore: %w", err)
	}
	s := &Sigstore{}
	var err error
	if s.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("start sigstore: issuer key: %w", err)
	}
	if err := s.startIssuer(tb); err != nil {
		return nil, err
	}
	t0 := time.Now()
	fulcioChain, err := s.startFulcio(ctx, tb, bins.Fulcio, dir)
	if err != nil {
		return nil, err
	}
	tsaChain, err := s.startTSA(ctx, tb, bins.TSA, dir)
	if err != nil {
		return nil, err
	}
	rekorPub, err := s.startRekor(ctx, tb, bins.Rekor, dir)
	if err != nil {
		return nil, err
	}
	tb.Logf("sigstore ready: issuer %s, fulcio %s, tsa %s, rekor %s (%s)", s.IssuerURL, s.FulcioURL, s.TSAURL, s.RekorURL, time.Since(t0).Round(time.Millisecond))

	// Valid from a day ago: the CA's and log's start times must precede
	// every signature made in the run.
	start := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	c := NewCosign(bins.Cosign3, dir)
	trustedRoot := func(path string, withLog bool) ([]byte, error) {
		args := []string{"trusted-root", "create",
			"--fulcio=url=" + s.FulcioURL + ",certificate-chain=" + fulcioChain + ",start-time=" + start,
			"--tsa=url=" + s.TSAURL + ",certificate-chain=" + tsaChain + ",start-time=" + start,
			"--out", path}
		if withLog {
			args = append(args, "--rekor=url="+s.RekorURL+",public-key="+rekorPub+",start-time="+start+",origin="+rekorOrigin)
		}
		if _, err := c.run(ctx, dir, args...); err != nil {
			return nil, fmt.Errorf("start sigstore: trusted root: %w", err)
		}
		return os.ReadFile(path)
	}
	s.TrustedRootPath = filepath.Join(dir, "trusted_root.json")
	if s.TrustedRoot, err = trustedRoot(s.TrustedRootPath, true); err != nil {
		return nil, err
	}
	s.NoLogTrustedRootPath = filepath.Join(dir, "trusted_root-no-log.json")
	if s.NoLogTrustedRoot, err = trustedRoot(s.NoLogTrustedRootPath, false); err != nil {
		return nil, err
	}
	s.SigningConfigPath = filepath.Join(dir, "signing_config.json")
	s.NoLogSigningConfigPath = filepath.Join(dir, "signing_config-no-log.json")
	for path, withLog := range map[string]bool{s.SigningConfigPath: true, s.NoLogSigningConfigPath: false} {
		if err := os.WriteFile(path, s.signingConfig(start, withLog), 0o644); err != nil {
			return nil, fmt.Errorf("start sigstore: %w", err)
		}
	}
	return s, nil
}

// signingConfig is a v0.2 signing config: this Fulcio, issuer and TSA,
// and the Rekor v2 log when withLog.
func (s *Sigstore) signingConfig(start string, withLog bool) []byte {
	svc := func(url string, api int) []any {
		return []any{map[string]any{"url": url, "majorApiVersion": api, "validFor": map[string]any{"start": start}, "operator": "signgate-e2e"}}
	}
	sc := map[string]any{
		"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
		"caUrls":    svc(s.FulcioURL, 1),
		"oidcUrls":  svc(s.IssuerURL, 1),
		"tsaUrls":   svc(s.TSAURL, 1),
		"tsaConfig": map[string]any{"selector": "ANY"},
	}
	if withLog {
		sc["rekorTlogUrls"] = svc(s.RekorURL, 2)
		sc["rekorTlogConfig"] = map[string]any{"selector": "ANY"}
	}
	b, _ := json.Marshal(sc)
	return b
}

// startIssuer serves OIDC discovery and the JWKS of s.key on 127.0.0.1.
func (s *Sigstore) startIssuer(tb TB) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start oidc issuer: %w", err)
	}
	s.IssuerURL = "http://" + ln.Addr().String()
	b64 := base64.RawURLEncoding
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": s.IssuerURL, "jwks_uri": s.IssuerURL + "/keys",
			"authorization_endpoint": s.IssuerURL + "/auth", "token_endpoint": s.IssuerURL + "/token",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]string{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "e2e",
			"n": b64.EncodeToString(s.key.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(s.key.E)).Bytes()),
		}}})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return nil
}

// Token mints an ID token for w with the claims GitHub Actions sets,
// audience "sigstore", valid for ten minutes.
func (s *Sigstore) Token(w Workflow) (string, error) {
	now := time.Now()
	owner, _, _ := strings.Cut(w.Repository, "/")
	sha := fmt.Sprintf("%x", sha256.Sum256([]byte(w.Subject())))[:40]
	claims := map[string]any{
		"iss": s.IssuerURL, "aud": "sigstore",
		"sub": "repo:" + w.Repository + ":ref:" + w.Ref,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"repository": w.Repository, "repository_owner": owner,
		"ref": w.Ref, "sha": sha, "event_name": "push",
		"job_workflow_ref": w.Repository + "/" + w.Path + "@" + w.Ref,
		"workflow_ref":     w.Repository + "/" + w.Path + "@" + w.Ref,
		"workflow_sha":     sha, "job_workflow_sha": sha,
		"runner_environment": "github-hosted",
	}
	b64 := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "e2e"})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := b64.EncodeToString(hdr) + "." + b64.EncodeToString(body)
	h := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, h[:])
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return in + "." + b64.EncodeToString(sig), nil
}

// fulcioConfig trusts s's issuer as a GitHub-Actions-like CI provider:
// the subject and extensions are Fulcio's github-workflow templates
// (config/identity/config.yaml in Fulcio), a subset of them.
func (s *Sigstore) fulcioConfig() []byte {
	b, _ := json.Marshal(map[string]any{
		"OIDCIssuers": map[string]any{s.IssuerURL: map[string]any{
			"IssuerURL": s.IssuerURL, "ClientID": "sigstore", "Type": "ci-provider", "CIProvider": "github-workflow",
		}},
		"CIIssuerMetadata": map[string]any{"github-workflow": map[string]any{
			"DefaultTemplateValues": map[string]string{"url": "https://github.com"},
			"ExtensionTemplates": map[string]string{
				"GithubWorkflowTrigger":    "event_name",
				"GithubWorkflowSHA":        "sha",
				"GithubWorkflowRepository": "repository",
				"GithubWorkflowRef":        "ref",
				"BuildSignerURI":           "{{ .url }}/{{ .job_workflow_ref }}",
				"BuildSignerDigest":        "job_workflow_sha",
				"RunnerEnvironment":        "runner_environment",
				"SourceRepositoryURI":      "{{ .url }}/{{ .repository }}",
				"SourceRepositoryDigest":   "sha",
				"SourceRepositoryRef":      "ref",
				"SourceRepositoryOwnerURI": "{{ .url }}/{{ .repository_owner }}",
				"BuildConfigURI":           "{{ .url }}/{{ .workflow_ref }}",
				"BuildConfigDigest":        "workflow_sha",
				"BuildTrigger":             "event_name",
			},
			"SubjectAlternativeNameTemplate": "{{ .url }}/{{ .job_workflow_ref }}",
		}},
	})
	return b
}

// startFulcio starts Fulcio with an ephemeral CA and no CT log, and
// writes its certificate chain (from /api/v2/trustBundle) to a PEM file
// whose path it returns.
func (s *Sigstore) startFulcio(ctx context.Context, tb TB, bin, dir string) (string, error) {
	cfg := filepath.Join(dir, "fulcio.json")
	if err := os.WriteFile(cfg, s.fulcioConfig(), 0o644); err != nil {
		return "", fmt.Errorf("start fulcio: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return "", err
	}
	s.FulcioURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	p, err := startProcess(tb, dir, procSpec{name: "fulcio", bin: bin, args: []string{
		"serve", "--ca", "ephemeralca", "--ct-log-url", "", "--config-path", cfg,
		"--host", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(ports[1]),
		"--metrics-port", strconv.Itoa(ports[2]),
		// An abstract socket of its own, not the shared default path.
		"--legacy-unix-domain-socket", "@signgate-e2e-fulcio-" + strconv.Itoa(ports[0]),
		"--log_type", "dev",
	}})
	if err != nil {
		return "", err
	}
	var chain []byte
	if err := p.waitReady(ctx, func(ctx context.Context) error {
		body, err := httpGet(ctx, s.FulcioURL+"/api/v2/trustBundle")
		if err != nil {
			return err
		}
		var tb struct {
			Chains []struct {
				Certificates []string `json:"certificates"`
			} `json:"chains"`
		}
		if err := json.Unmarshal(body, &tb); err != nil || len(tb.Chains) == 0 || len(tb.Chains[0].Certificates) == 0 {
			return fmt.Errorf("trust bundle %q: no chain (%v)", body, err)
		}
		chain = []byte(strings.Join(tb.Chains[0].Certificates, ""))
		return nil
	}); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "fulcio-chain.pem")
	return path, writePEMChain(path, chain)
}

// startTSA starts timestamp-authority with an in-memory signer and writes
// its certificate chain to a PEM file whose path it returns.
func (s *Sigstore) startTSA(ctx context.Context, tb TB, bin, dir string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	s.TSAURL = base + "/api/v1/timestamp"
	// Registered before the server's own cleanup, so released after it
	// has stopped (cleanups run last-in first-out).
	if err := lockTSAMetricsPort(ctx, tb); err != nil {
		return "", err
	}
	p, err := startProcess(tb, dir, procSpec{name: "timestamp-server", bin: bin, args: []string{
		"serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--timestamp-signer", "memory", "--disable-ntp-monitoring",
	}})
	if err != nil {
		return "", err
	}
	var chain []byte
	if err := p.waitReady(ctx, func(ctx context.Context) error {
		chain, err = httpGet(ctx, base+"/api/v1/timestamp/certchain")
		return err
	}); err != nil {
		if strings.Contains(p.Tail(40), "address already in use") {
			err = fmt.Errorf("%w\n(timestamp-server always serves its metrics on :2112; another program holds that port)", err)
		}
		return "", err
	}
	path := filepath.Join(dir, "tsa-chain.pem")
	return path, writePEMChain(path, chain)
}

// tsaLockName is a lock file, in the system's temp dir, that one
// timestamp server at a time holds on this machine: each serves its
// metrics on :2112, which timestamp-authority v2.1.3 cannot move, so two
// e2e suites started at once (a CI clone beside a working tree) would
// otherwise fail one another.
const tsaLockName = "signgate-e2e-timestamp-server-2112.lock"

// lockTSAMetricsPort takes the tsaLockName lock, waiting while another
// suite's timestamp server holds it (a keyless test holds it seconds);
// the lock is released at tb's cleanup, and by the kernel if the
// process dies.
func lockTSAMetricsPort(ctx context.Context, tb TB) error {
	path := filepath.Join(os.TempDir(), tsaLockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return fmt.Errorf("start timestamp-server: lock: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			tb.Cleanup(func() { f.Close() }) // closing releases the lock
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("start timestamp-server: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return fmt.Errorf("start timestamp-server: another e2e suite's timestamp server still holds %s (for :2112) after %s", path, hangGuard)
		case <-tick.C:
		}
	}
}

// startRekor starts a rekor-tiles log on local storage with a new P-256
// key and returns the path of the key's public half.
func (s *Sigstore) startRekor(ctx context.Context, tb TB, bin, dir string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("start rekor: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("start rekor: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", fmt.Errorf("start rekor: %w", err)
	}
	keyPath, pubPath := filepath.Join(dir, "rekor.key"), filepath.Join(dir, "rekor.pub")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return "", fmt.Errorf("start rekor: %w", err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return "", fmt.Errorf("start rekor: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return "", err
	}
	s.RekorURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	p, err := startProcess(tb, dir, procSpec{name: "rekor-server", bin: bin, args: []string{
		"serve", "--storage-dir", filepath.Join(dir, "rekor-storage"), "--signer-filepath", keyPath,
		"--hostname", rekorOrigin,
		"--http-address", "127.0.0.1", "--http-port", strconv.Itoa(ports[0]),
		"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(ports[1]),
		"--http-metrics-port", strconv.Itoa(ports[2]),
		"--checkpoint-interval", "1s",
	}})
	if err != nil {
		return "", err
	}
	if err := p.waitReady(ctx, func(ctx context.Context) error {
		_, err := httpGet(ctx, s.RekorURL+"/healthz")
		return err
	}); err != nil {
		return "", err
	}
	return pubPath, nil
}

// SignKeyless signs d as w with c against s: the ID token goes to
// Fulcio, the signature to the TSA and, when withLog, to Rekor; the
// sigstore bundle goes to the registry as an OCI referrer (under the
// fallback tag sha256-<hex> on a registry without the referrers API):
//
//	cosign sign --yes --new-bundle-format --signing-config sc.json --trusted-root tr.json --identity-token T --allow-http-registry --allow-insecure-registry d
//
// Without the log the signing config and trusted root are the NoLog ones.
func (s *Sigstore) SignKeyless(ctx context.Context, c *Cosign, w Workflow, d name.Digest, withLog bool) error {
	tok, err := s.Token(w)
	if err != nil {
		return err
	}
	sc, tr := s.SigningConfigPath, s.TrustedRootPath
	if !withLog {
		sc, tr = s.NoLogSigningConfigPath, s.NoLogTrustedRootPath
	}
	if _, err := c.run(ctx, "", "sign", "--yes", "--new-bundle-format",
		"--signing-config", sc, "--trusted-root", tr,
		"--identity-token", tok, "--allow-http-registry", "--allow-insecure-registry", d.String()); err != nil {
		return fmt.Errorf("sign %s keyless as %s (log: %t): %w", d, w.Subject(), withLog, err)
	}
	return nil
}

// freePorts is n distinct free ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	seen := map[int]bool{}
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// httpGet is the body (at most 1 MiB) of a 200 answer to GET url.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// writePEMChain writes the PEM certificates of data to path, refusing
// anything else.
func writePEMChain(path string, data []byte) error {
	var out []byte
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("%s: a %s block where certificates were expected", path, block.Type)
		}
		out = append(out, pem.EncodeToMemory(block)...)
	}
	if len(out) == 0 {
		return errors.New(path + ": no PEM certificate in " + strconv.Quote(string(data)))
	}
	return os.WriteFile(path, out, 0o644)
}
