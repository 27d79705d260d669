package verifier_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

func pubPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(p256)
	tests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"ECDSA P-256", pubPEM(t, p256.Public()), ""},
		{"ECDSA P-384", pubPEM(t, p384.Public()), ""},
		{"RSA 2048", pubPEM(t, rsa2048.Public()), ""},
		{"Ed25519", pubPEM(t, edPub), ""},
		{"ECDSA P-224", pubPEM(t, p224.Public()), "unsupported ECDSA curve"},
		{"RSA 1024", pubPEM(t, rsa1024.Public()), "at least 2048"},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), `want "PUBLIC KEY"`},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}), "parse public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifier.ParsePublicKey(tc.pem)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestVerifyKeyTypes: every supported key type verifies in both layouts.
func TestVerifyKeyTypes(t *testing.T) {
	t.Parallel()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]crypto.Signer{"ECDSA P-384": p384, "RSA": rsaKey, "Ed25519": edKey}
	for name, key := range keys {
		for _, layout := range []registrytest.Layout{registrytest.Classic, registrytest.Bundle} {
			t.Run(name+"/"+layout.String(), func(t *testing.T) {
				t.Parallel()
				s := registrytest.NewSignerFromKey(t, key)
				reg := registrytest.New(t)
				d := reg.PushImage(t, "team/app", "v1")
				reg.Sign(t, s, d, layout)
				pub, err := verifier.ParsePublicKey(s.PublicPEM)
				if err != nil {
					t.Fatal(err)
				}
				v := newVerifier(t, reg, verifier.Options{})
				if _, err := v.Verify(t.Context(), d, verifier.AuthoritySet{Authorities: []verifier.Authority{{Name: "k", Key: pub}}}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
