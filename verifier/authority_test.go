package verifier_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

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
				if _, err := v.Verify(t.Context(), d, newSet(t, 0, verifier.Authority{Name: "k", Key: pub})); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
