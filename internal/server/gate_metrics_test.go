package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/policy"
)

// gather collects c alone, as "label=value,..." → value per series of the
// family name.
func gather(t *testing.T, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			t.Errorf("unexpected family %s", f.GetName())
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	return got
}

func TestBuildInfo(t *testing.T) {
	t.Parallel()
	for version, want := range map[string]string{"v1.2.3": "v1.2.3", "": "unknown"} {
		got := gather(t, buildInfo(version), "signgate_build_info")
		if len(got) != 1 {
			t.Fatalf("%d series, want 1: %v", len(got), got)
		}
		for labels, v := range got {
			// No VCS information in a test binary: the revision is unknown.
			if w := "goversion=" + runtime.Version() + ",revision=unknown,version=" + want; labels != w || v != 1 {
				t.Errorf("buildInfo(%q) = %s %g, want %s 1", version, labels, v, w)
			}
		}
	}
}

// TestPoliciesMetric: every kind and state has a series; one invalid
// policy counts as invalid.
func TestPoliciesMetric(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: corp}
spec: {images: [{glob: "registry.example.com/**"}], static: {action: pass}}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: broken}
spec: {images: [{glob: "ghcr.io/**"}], static: {action: maybe}}
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: ci, namespace: team-a}
spec: {images: [{glob: "registry.example.com/team-a/**"}], static: {action: fail}}
`
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := policy.NewFileSource(dir, policy.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"kind=ClusterImagePolicy,state=ready":   1,
		"kind=ClusterImagePolicy,state=invalid": 1,
		"kind=ImagePolicy,state=ready":          1,
		"kind=ImagePolicy,state=invalid":        0,
		"kind=TrustRoot,state=ready":            0,
		"kind=TrustRoot,state=invalid":          0,
	}
	if diff := cmp.Diff(want, gather(t, policiesCollector{summary: src.Summary}, "signgate_policies")); diff != "" {
		t.Errorf("signgate_policies (-want +got):\n%s", diff)
	}
}

// writeTestCert writes a self-signed CA certificate expiring at notAfter
// (and its key) as PEM; it appends to certFile when add is set.
func writeTestCert(t *testing.T, certFile, keyFile string, notAfter time.Time, add bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(notAfter.Unix()), Subject: pkix.Name{CommonName: "signgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if add {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(certFile, flags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		t.Fatal(err)
	}
	if keyFile != "" {
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCertificateExpiryMetric: the serving certificate's NotAfter, again
// after a reload, and the client CA bundle's earliest NotAfter.
func TestCertificateExpiryMetric(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	writeTestCert(t, certFile, keyFile, notAfter, false)
	writeTestCert(t, caFile, "", notAfter.Add(48*time.Hour), false)
	writeTestCert(t, caFile, "", notAfter.Add(24*time.Hour), true) // the earliest
	writeTestCert(t, caFile, "", notAfter.Add(72*time.Hour), true)
	log := slog.New(slog.DiscardHandler)
	certs, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := newClientCAReloader(caFile, log)
	if err != nil {
		t.Fatal(err)
	}
	const name = "signgate_certificate_expiry_timestamp_seconds"
	want := map[string]float64{
		"certificate=serving":   float64(notAfter.Unix()),
		"certificate=client_ca": float64(notAfter.Add(24 * time.Hour).Unix()),
	}
	if diff := cmp.Diff(want, gather(t, certExpiryCollector{serving: certs.notAfter, clientCA: cas.expiry}, name)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
	// Without --client-ca-file: serving only. After a rotation: the new
	// certificate's NotAfter, once it is loaded.
	renewed := notAfter.Add(30 * 24 * time.Hour)
	writeTestCert(t, certFile, keyFile, renewed, false)
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := certs.GetCertificate(nil); err != nil {
		t.Fatal(err)
	}
	want = map[string]float64{"certificate=serving": float64(renewed.Unix())}
	if diff := cmp.Diff(want, gather(t, certExpiryCollector{serving: certs.notAfter}, name)); diff != "" {
		t.Errorf("%s after reload (-want +got):\n%s", name, diff)
	}
}
