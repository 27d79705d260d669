package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/internal/server"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number to certFile and keyFile.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "signgate-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedSerial opens a new TLS connection and returns the serial number of
// the certificate the server presents.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // the test checks which cert is served
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// testOptions returns serve options on loopback ports with a fresh
// certificate (serial 1) and an empty policy directory, all in dir.
func testOptions(t *testing.T, dir string) serveOptions {
	t.Helper()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	policyDir := filepath.Join(dir, "policies")
	if err := os.Mkdir(policyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return serveOptions{Options: server.Options{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile,
		PolicyDir: policyDir, Namespace: "signgate-system"}, LogFormat: "text"}
}

// startServer builds and starts a server. stop is SIGTERM: it cancels the
// server's context and returns run's result once it has stopped.
func startServer(t *testing.T, o serveOptions) (s *server.Server, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := server.New(ctx, o.Options, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(server.ShutdownGrace + 5*time.Second):
				runErr = errors.New("server did not stop after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

func TestServeRotatesCertificate(t *testing.T) {
	o := testOptions(t, t.TempDir())
	certFile, keyFile := o.CertFile, o.KeyFile
	s, stop := startServer(t, o)
	addr, metrics := s.WebhookAddr().String(), "http://"+s.MetricsAddr().String()

	if got := servedSerial(t, addr); got != 1 {
		t.Fatalf("serial = %d, want 1", got)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, metrics+path); code != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}

	// A review through TLS, then the metrics must show it.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"DELETE","namespace":"team-a"}}`
	resp, err := client.Post("https://"+addr+"/validate?timeout=5s", "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// DELETE is outside the protocol (the webhooks are registered for
	// CREATE and UPDATE): denied.
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"uid":"u1"`)) || !bytes.Contains(body, []byte(`"allowed":false`)) {
		t.Errorf("POST /validate = %d %s", resp.StatusCode, body)
	}
	if _, m := get(t, metrics+"/metrics"); !strings.Contains(m, `signgate_admission_requests_total{decision="denied",kind="Pod",operation="DELETE",webhook="validate"} 1`) {
		t.Errorf("metrics lack the review:\n%s", m)
	}

	// Rotate: the next connection gets the new certificate, no restart.
	writeCert(t, certFile, keyFile, 2)
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := servedSerial(t, addr); got != 2 {
		t.Fatalf("after rotation serial = %d, want 2", got)
	}

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeProfiling: --profiling adds /debug/pprof/ to the metrics port,
// off by default; the webhook port never has it.
func TestServeProfiling(t *testing.T) {
	for _, profiling := range []bool{false, true} {
		t.Run(fmt.Sprintf("profiling=%v", profiling), func(t *testing.T) {
			base := testOptions(t, t.TempDir())
			args := []string{"--listen", base.Listen, "--metrics-listen", base.MetricsListen,
				"--tls-cert-file", base.CertFile, "--tls-key-file", base.KeyFile, "--policy-dir", base.PolicyDir}
			if profiling {
				args = append(args, "--profiling")
			}
			var o serveOptions
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			o.addFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			if err := o.validate(); err != nil {
				t.Fatal(err)
			}
			if o.Profiling != profiling {
				t.Fatalf("Profiling = %v after %q", o.Profiling, args)
			}
			s, _ := startServer(t, o)

			want := http.StatusNotFound
			if profiling {
				want = http.StatusOK
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
				if code, body := get(t, "http://"+s.MetricsAddr().String()+path); code != want {
					t.Errorf("metrics port: GET %s = %d, want %d: %.200s", path, code, want, body)
				}
			}

			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
			defer client.CloseIdleConnections()
			resp, err := client.Get("https://" + s.WebhookAddr().String() + "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("webhook port: GET /debug/pprof/ = %d, want %d: %.200s", resp.StatusCode, http.StatusNotFound, b)
			}
		})
	}
}

func TestServeBadInputExits2(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	badConfig := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(badConfig, []byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: maybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no cert", []string{"--policy-dir", dir}, "--tls-cert-file and --tls-key-file are required"},
		{"bad log format", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--log-format", "xml"}, "--log-format must be json or text"},
		{"bad log level", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--log-level", "verbose"}, `--log-level must be debug, info, warn or error, not "verbose"`},
		{"missing cert file", []string{"--tls-cert-file", filepath.Join(dir, "nope"), "--tls-key-file", keyFile, "--policy-dir", dir}, "nope"},
		{"bad config", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--policy-dir", dir, "--config", badConfig}, "unmatchedImages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(t.Context(), append([]string{"serve"}, tc.args...), io.Discard, &stderr); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", &stderr, tc.want)
			}
		})
	}
}

// TestServeFinishesInFlightOnShutdown: SIGTERM (ctx cancelled) while a
// review waits on the registry; the registry answers only once the
// server's Shutdown has begun, and the review is still answered, then run
// returns nil.
func TestServeFinishesInFlightOnShutdown(t *testing.T) {
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team-a/app", "v1")
	signer := registrytest.NewSigner(t)
	reg.Sign(t, signer, d, registrytest.Classic)
	hold := registrytest.NewHold(nil)
	reg.SetFault(hold.Fault)
	t.Cleanup(hold.Release) // before the registry closes: it waits for held requests

	dir := t.TempDir()
	o := testOptions(t, dir)
	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(signer.PublicPEM)), "\n", "\n          ")
	pol := "apiVersion: signgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: ci, namespace: team-a}\nspec:\n  images: [{glob: \"" + reg.Host + "/team-a/**\"}]\n  authorities:\n    - name: ci-key\n      key:\n        data: |\n" + key + "\n"
	if err := os.WriteFile(filepath.Join(o.PolicyDir, "policy.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.yaml")
	// The review is held on the registry for as long as the test takes to
	// get to Shutdown: the longest registry timeout and review deadline, so
	// that only a hang could turn it into a "retry" denial.
	// The ImagePolicy covers the image: policies.namespacePoliciesCoverImages.
	cfg := "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nregistry: {insecureRegistries: [\"" + reg.Host + "\"], allowedHosts: [\"" + reg.Host + "\"], timeout: 20s}\n" +
		"policies: {namespacePoliciesCoverImages: true}\n"
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o.ConfigFile = config
	s, stop := startServer(t, o)
	// The registry answers once Shutdown has begun: the review is in
	// flight when it does.
	s.RegisterOnShutdown(hold.Release)

	pod := `{"metadata":{"name":"p"},"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"a","image":"` +
		d.String() + `","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"team-a","object":` + pod + `}}`
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	type result struct {
		body string
		err  error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := client.Post("https://"+s.WebhookAddr().String()+"/validate?timeout=30s", "application/json", strings.NewReader(review))
		if err != nil {
			answered <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- result{string(b), err}
	}()
	select {
	case <-hold.Arrived(): // the review is now waiting on the registry
	case r := <-answered:
		t.Fatalf("review answered without asking the registry: %v %s", r.err, r.body)
	case <-time.After(hangGuard):
		t.Fatalf("waited %s for the review to reach the registry", hangGuard)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	r := await(t, "the in-flight review to be answered", answered)
	if r.err != nil || !strings.Contains(r.body, `"uid":"u2"`) || !strings.Contains(r.body, `"allowed":true`) {
		t.Errorf("in-flight review: %v %s", r.err, r.body)
	}
	if err := await(t, "run to return", stopped); err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestServeReloadsConfig: a changed --config applies to the next reviews
// without a restart; a bad one keeps the last good configuration; both
// are counted.
func TestServeReloadsConfig(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, dir)
	config := filepath.Join(dir, "config.yaml")
	// By rename: the watcher polls, and may otherwise read a half-written
	// file and count a failed reload of its own.
	writeConfig := func(unmatched string) {
		t.Helper()
		writeAtomic(t, config, "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: "+unmatched+"\n")
	}
	writeConfig("deny")
	o.ConfigFile = config
	s, _ := startServer(t, o)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	pod := `{"metadata":{"name":"p"},"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"a","image":"registry.example.com/a@sha256:` +
		strings.Repeat("a", 64) + `","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u3","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"team-a","object":` + pod + `}}`
	allowed := func() bool {
		t.Helper()
		resp, err := client.Post("https://"+s.WebhookAddr().String()+"/validate", "application/json", strings.NewReader(review))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"allowed":true`)
	}
	metric := func(result string) error {
		_, m := get(t, "http://"+s.MetricsAddr().String()+"/metrics")
		if want := `signgate_config_reloads_total{result="` + result + `"} 1`; !strings.Contains(m, want) {
			return fmt.Errorf("metrics lack %s", want)
		}
		return nil
	}

	if allowed() {
		t.Fatal("unmatched image allowed with unmatchedImages: deny")
	}
	writeConfig("allow")
	waitFor(t, "the reload to allow unmatched images", func() error {
		if !allowed() {
			return errors.New("unmatched image still denied")
		}
		return metric("success")
	})
	writeConfig("sometimes")
	waitFor(t, "the bad reload to be counted", func() error { return metric("failure") })
	if !allowed() {
		t.Error("a bad reload replaced the last good configuration")
	}
}
