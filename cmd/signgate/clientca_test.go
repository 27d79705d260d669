package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that issues client certificates in a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
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
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue returns a certificate for cn signed by the CA with the given
// extended key usage.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writeCAFile replaces file with content by rename, as a Secret or
// ConfigMap volume update does, and moves its modification time forward
// so the change is seen even on a coarse file system clock.
func writeCAFile(t *testing.T, file, content string) {
	t.Helper()
	writeAtomic(t, file, content)
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
}

// reviewWithCert POSTs a review to /validate on a new connection,
// presenting certs (none when empty), and returns the transport error or
// an error describing an answer that is not an AdmissionReview for uid.
// Whether the review is allowed is not this file's concern.
func reviewWithCert(t *testing.T, addr, uid string, certs ...tls.Certificate) error {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, Certificates: certs, MinVersion: tls.VersionTLS12}, //nolint:gosec // the server certificate is not what is tested
	}}
	defer client.CloseIdleConnections()
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"DELETE","namespace":"team-a"}}`
	resp, err := client.Post("https://"+addr+"/validate", "application/json", strings.NewReader(review))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"uid":"`+uid+`"`)) {
		return fmt.Errorf("answer %d %s", resp.StatusCode, body)
	}
	return nil
}

// TestServeClientCA: with --client-ca-file the webhook port answers only
// clients with a certificate from a CA in the file; the metrics port stays
// plain HTTP; a new CA written to the file is used without a restart, the
// old one is then refused, and a bad rewrite keeps the last good CAs.
func TestServeClientCA(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, dir)
	o.ClientCAFile = filepath.Join(dir, "client-ca.crt")
	caA, other := newTestCA(t, "client-ca-a"), newTestCA(t, "other-ca")
	writeCAFile(t, o.ClientCAFile, caA.pem)
	s, stop := startServer(t, o)
	addr, metrics := s.WebhookAddr().String(), "http://"+s.MetricsAddr().String()

	apiserverA := caA.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth)
	if err := reviewWithCert(t, addr, "a1", apiserverA); err != nil {
		t.Fatalf("review with a client certificate from the CA: %v", err)
	}
	// The client CA check does not cost the API server HTTP/2.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{apiserverA}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}) //nolint:gosec // the server certificate is not what is tested
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("ALPN negotiated %q, want h2", got)
	}
	conn.Close()
	refused := []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no client certificate", nil},
		{"certificate from another CA", []tls.Certificate{other.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth)}},
		{"server-only certificate from the CA", []tls.Certificate{caA.issue(t, "not-a-client", x509.ExtKeyUsageServerAuth)}},
	}
	for _, tc := range refused {
		if err := reviewWithCert(t, addr, "x", tc.certs...); err == nil {
			t.Errorf("%s: review answered, want a failed TLS handshake", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, metrics+path); code != http.StatusOK {
			t.Errorf("GET %s = %d %s: the metrics port must not need a client certificate", path, code, body)
		}
	}

	// Rotate to a new CA: its clients are let in without a restart.
	caB := newTestCA(t, "client-ca-b")
	apiserverB := caB.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth)
	writeCAFile(t, o.ClientCAFile, caB.pem)
	waitFor(t, "a client certificate from the new CA to be accepted", func() error {
		return reviewWithCert(t, addr, "b1", apiserverB)
	})
	if err := reviewWithCert(t, addr, "a2", apiserverA); err == nil {
		t.Error("client certificate from the removed CA still accepted after the rotation")
	}

	// A bad rewrite is seen by the next handshake and keeps the last good CAs.
	writeCAFile(t, o.ClientCAFile, "not a certificate\n")
	if err := reviewWithCert(t, addr, "b2", apiserverB); err != nil {
		t.Errorf("after a bad rewrite of the CA file: %v, want the last good CAs kept", err)
	}
	if err := reviewWithCert(t, addr, "x", other.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth)); err == nil {
		t.Error("after a bad rewrite of the CA file a certificate from another CA is accepted")
	}

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestServeClientCAFlagErrors: a --client-ca-file that cannot be used is a
// startup error naming the flag and the file.
func TestServeClientCAFlagErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.crt")
	notPEM := write("not-pem.crt", "just text\n")
	keyOnly := write("key-only.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("x")})))
	badCert := write("bad-cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})))
	tests := []struct {
		name, file, want string
	}{
		{"missing file", missing, "read --client-ca-file " + missing + ": no such file or directory"},
		{"not PEM", notPEM, "--client-ca-file " + notPEM + ": no PEM certificates"},
		{"no certificate block", keyOnly, "--client-ca-file " + keyOnly + ": no PEM certificates"},
		{"certificate does not parse", badCert, "parse --client-ca-file " + badCert + ": certificate 1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--policy-dir", dir, "--client-ca-file", tc.file}
			if code := run(t.Context(), append([]string{"serve"}, args...), io.Discard, &stderr); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not contain %q", &stderr, tc.want)
			}
		})
	}
	// The flag is documented in --help.
	var help bytes.Buffer
	if code := run(t.Context(), []string{"serve", "--help"}, &help, io.Discard); code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	if !strings.Contains(help.String(), "--client-ca-file FILE") {
		t.Errorf("--help does not document --client-ca-file FILE:\n%s", &help)
	}
}
