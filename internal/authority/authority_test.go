package authority

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/importtest"
)

func pubPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func newKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
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
		wantErr string // the whole message; "" for a key
	}{
		{"ECDSA P-256", pubPEM(t, p256.Public()), ""},
		{"ECDSA P-384", pubPEM(t, p384.Public()), ""},
		{"RSA 2048", pubPEM(t, rsa2048.Public()), ""},
		{"Ed25519", pubPEM(t, edPub), ""},
		{"trailing white space", append(pubPEM(t, edPub), " \n\t\n"...), ""},
		{"ECDSA P-224", pubPEM(t, p224.Public()), "parse public key: ECDSA curve P-224 not supported, want P-256 or P-384"},
		{"RSA 1024", pubPEM(t, rsa1024.Public()), "parse public key: RSA key of 1024 bits, want at least 2048"},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), `parse public key: PEM block is "PRIVATE KEY", want "PUBLIC KEY"`},
		{"not PEM", []byte("hello"), "parse public key: no PEM block"},
		{"two keys", append(pubPEM(t, p256.Public()), pubPEM(t, p384.Public())...), "parse public key: more than one PEM block"},
		{"text after the key", append(pubPEM(t, p256.Public()), "junk"...), "parse public key: more than one PEM block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, err := ParsePublicKey(tc.pem)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "" && key == nil:
				t.Fatal("no key and no error")
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	_, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}))
	if err == nil || !strings.HasPrefix(err.Error(), "parse public key: ") {
		t.Errorf("garbage DER: err = %v, want a parse public key error", err)
	}
}

// TestNewSet: a set is validated once, when it is built, and says what is
// wrong with it.
func TestNewSet(t *testing.T) {
	t.Parallel()
	alice, bob := newKey(t), newKey(t)
	short := ed25519.PublicKey(make([]byte, 31))
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	tests := []struct {
		name          string
		threshold     int
		as            []Authority
		wantErr       string
		wantThreshold int
	}{
		{"threshold 0 means 1", 0, []Authority{{Name: "a", Key: alice}}, "", 1},
		{"threshold 2 of 2", 2, []Authority{{Name: "a", Key: alice}, {Name: "b", Key: bob}}, "", 2},
		{"no authorities", 1, nil, "no authorities", 0},
		{"negative threshold", -1, []Authority{{Name: "a", Key: alice}}, "threshold -1 is negative", 0},
		{"threshold above the keys", 3, []Authority{{Name: "a", Key: alice}, {Name: "b", Key: bob}}, "threshold 3 is more than the 2 distinct authorities (authorities with the same key or keyless identities count once)", 0},
		{"threshold counts distinct keys, not names", 2, []Authority{{Name: "a", Key: alice}, {Name: "a-again", Key: alice}}, "threshold 2 is more than the 1 distinct authorities (authorities with the same key or keyless identities count once)", 0},
		{"a nil key", 1, []Authority{{Name: "a", Key: alice}, {Name: "b"}}, `authority "b": no key`, 0},
		{"a nil ECDSA key", 1, []Authority{{Name: "a", Key: (*ecdsa.PublicKey)(nil)}}, `authority "a": no key`, 0},
		{"a short Ed25519 key", 1, []Authority{{Name: "a", Key: short}}, `authority "a": Ed25519 key of 31 bytes, want 32`, 0},
		{"an unsupported curve", 1, []Authority{{Name: "a", Key: p224.Public()}}, `authority "a": ECDSA curve P-224 not supported, want P-256 or P-384`, 0},
		{"an unsupported type", 1, []Authority{{Name: "a", Key: "not a key"}}, `authority "a": key type string not supported, want ECDSA P-256/P-384, RSA or Ed25519`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewSet(tc.threshold, tc.as...)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("NewSet = %v, want error %q", err, tc.wantErr)
				}
				if s.Len() != 0 || s.Fingerprint() != "" {
					t.Errorf("a failed NewSet returned a usable set")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Threshold() != tc.wantThreshold || s.Len() != len(tc.as) || s.Fingerprint() == "" {
				t.Errorf("set: threshold %d, len %d, fingerprint %q; want %d, %d, non-empty", s.Threshold(), s.Len(), s.Fingerprint(), tc.wantThreshold, len(tc.as))
			}
		})
	}
}

// TestSetIsImmutable: changing the slice a set was built from changes
// nothing in the set.
func TestSetIsImmutable(t *testing.T) {
	t.Parallel()
	alice, bob := newKey(t), newKey(t)
	as := []Authority{{Name: "alice", Key: alice}, {Name: "bob", Key: bob}}
	s, err := NewSet(0, as...)
	if err != nil {
		t.Fatal(err)
	}
	fp := s.Fingerprint()
	as[0] = Authority{Name: "mallory", Key: newKey(t)}
	if got := s.Names(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("Names = %v after the caller's slice changed", got)
	}
	for id, a := range s.All() {
		der, _ := x509.MarshalPKIXPublicKey(a.Key)
		if id != string(der) {
			t.Errorf("authority %q: identity is not its key's PKIX encoding", a.Name)
		}
	}
	if s.Fingerprint() != fp {
		t.Error("fingerprint changed")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	alice, bob := newKey(t), newKey(t)
	set := func(threshold int, as ...Authority) Set {
		s, err := NewSet(threshold, as...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := set(0, Authority{Name: "a", Key: alice}, Authority{Name: "b", Key: bob})
	tests := []struct {
		name string
		set  Set
		same bool
	}{
		{"other order", set(0, Authority{Name: "b", Key: bob}, Authority{Name: "a", Key: alice}), true},
		{"other names", set(0, Authority{Name: "x", Key: alice}, Authority{Name: "y", Key: bob}), true},
		{"threshold 0 is 1", set(1, Authority{Name: "a", Key: alice}, Authority{Name: "b", Key: bob}), true},
		{"duplicate key", set(0, Authority{Name: "a", Key: alice}, Authority{Name: "b", Key: bob}, Authority{Name: "c", Key: alice}), true},
		{"key removed", set(0, Authority{Name: "a", Key: alice}), false},
		{"key replaced", set(0, Authority{Name: "a", Key: alice}, Authority{Name: "b", Key: newKey(t)}), false},
		{"threshold changed", set(2, Authority{Name: "a", Key: alice}, Authority{Name: "b", Key: bob}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set.Fingerprint() == base.Fingerprint(); got != tc.same {
				t.Errorf("same fingerprint = %v, want %v", got, tc.same)
			}
		})
	}
}

// TestImports keeps the package a leaf: only the standard library, and
// for keyless authorities sigstore-go's trust material type.
func TestImports(t *testing.T) {
	t.Parallel()
	importtest.Check(t,
		importtest.Rule{Files: []string{"authority.go"}, Forbid: []string{"github.com/", "golang.org/", "k8s.io/"}, Allow: []string{"github.com/signgate/signgate/internal/attestation"},
			Why: "authority.go imports only the standard library (and the attestation requirements it holds)"},
		importtest.Rule{Files: []string{"keyless.go"}, Forbid: []string{"github.com/signgate/", "github.com/google/", "github.com/sigstore/cosign", "github.com/sigstore/sigstore-go/pkg/verify", "k8s.io/"},
			Why: "keyless.go holds trust material (sigstore-go/pkg/root) but verifies nothing: verification is the verifier's"})
}

// TestSetAttestations: the attestations an authority requires are part
// of the set's fingerprint, and one signer cannot be listed twice with
// different attestations.
func TestSetAttestations(t *testing.T) {
	t.Parallel()
	alice, bob := newKey(t), newKey(t)
	req := func(condition string) *attestation.Requirement {
		r, err := attestation.Compile("provenance", "slsaprovenance1", condition, "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	set := func(as ...Authority) Set {
		t.Helper()
		s, err := NewSet(1, as...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plain := set(Authority{Name: "a", Key: alice})
	attested := set(Authority{Name: "a", Key: alice, Attestations: []*attestation.Requirement{req("true")}})
	other := set(Authority{Name: "a", Key: alice, Attestations: []*attestation.Requirement{req("false")}})
	if plain.Attested() || !attested.Attested() {
		t.Errorf("Attested() = %v, %v", plain.Attested(), attested.Attested())
	}
	if plain.Fingerprint() == attested.Fingerprint() || attested.Fingerprint() == other.Fingerprint() {
		t.Error("the attestations do not change the fingerprint")
	}
	if _, err := NewSet(1, Authority{Name: "a", Key: alice, Attestations: []*attestation.Requirement{req("true")}}, Authority{Name: "b", Key: alice}); err == nil ||
		!strings.Contains(err.Error(), `authorities "a" and "b" trust the same signer with different attestations`) {
		t.Errorf("same key, different attestations: %v", err)
	}
	if _, err := NewSet(1, Authority{Name: "a", Key: bob, Attestations: []*attestation.Requirement{req("true"), req("false")}}); err == nil || !strings.Contains(err.Error(), `attestation "provenance" listed twice`) {
		t.Errorf("duplicate attestation: %v", err)
	}
}
