package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRegistryCertificateAuthorities: each file must be a regular file of
// PEM certificates that parse; the pools are keyed as configured.
func TestRegistryCertificateAuthorities(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testCACert(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.pem", append(append([]byte("# corp CA\n"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...))
	empty := write("empty.pem", []byte("not PEM\n"))
	broken := write("broken.pem", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})...))
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nregistry:\n  certificateAuthorities:\n    "
	tests := []struct {
		name, entry, want string // want: the error, "" for success
	}{
		{"valid", "Registry.Corp.Example:8443: " + good, ""},
		{"no certificate", "r.example: " + empty,
			`line 5: registry.certificateAuthorities["r.example"]: CA bundle of registry r.example: ` + empty +
				" holds no PEM certificate; it must hold the registry's CA certificates, each from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"},
		{"bad certificate", "r.example: " + broken,
			`line 5: registry.certificateAuthorities["r.example"]: CA bundle of registry r.example: ` + broken +
				": certificate 2 does not parse (x509: malformed certificate); the file must hold PEM CA certificates"},
		{"directory", "r.example: " + dir,
			`line 5: registry.certificateAuthorities["r.example"]: CA bundle of registry r.example: ` + dir +
				" is not a regular file; mount the file there (chart: registryCAs.existingConfigMap) or fix the path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(head + tc.entry + "\n"))
			if tc.want != "" {
				if err == nil || err.Error() != "parse GateConfiguration: "+tc.want {
					t.Fatalf("err = %v\nwant parse GateConfiguration: %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pools := c.Registry.CertificateAuthorityPools()
			pool := pools["Registry.Corp.Example:8443"]
			if len(pools) != 1 || pool == nil {
				t.Fatalf("CertificateAuthorityPools() = %v, want the one configured key", pools)
			}
			if _, err := ca.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Errorf("the pool does not hold the CA: %v", err)
			}
		})
	}
	if pools := DefaultConfig().Registry.CertificateAuthorityPools(); pools != nil {
		t.Errorf("default CertificateAuthorityPools() = %v, want nil", pools)
	}
}

func testCACert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
