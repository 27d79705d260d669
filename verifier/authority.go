package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// minRSABits is the smallest RSA modulus accepted as an authority key.
const minRSABits = 2048

// Authority is one trusted signer: a public key and the name reported when
// it verifies.
type Authority struct {
	Name string
	Key  crypto.PublicKey
}

// AuthoritySet is what a digest is verified against: at least Threshold
// distinct authorities (distinct keys) must have signed it. Threshold 0
// means 1. Two authorities with the same key count once.
type AuthoritySet struct {
	Authorities []Authority
	Threshold   int
}

// ParsePublicKey parses one PEM "PUBLIC KEY" block (PKIX) holding an ECDSA
// P-256 or P-384, RSA (at least 2048 bits) or Ed25519 key.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse public key: no PEM block found")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("parse public key: PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	return key, nil
}

func checkKey(key crypto.PublicKey) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("unsupported ECDSA curve %s, use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits, need at least %d", k.N.BitLen(), minRSABits)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("bad Ed25519 key length")
		}
	default:
		return fmt.Errorf("unsupported key type %T, use ECDSA P-256/P-384, RSA or Ed25519", key)
	}
	return nil
}

// threshold returns the effective threshold (0 means 1).
func (s AuthoritySet) threshold() int {
	if s.Threshold <= 0 {
		return 1
	}
	return s.Threshold
}

// validate checks the set once before any registry I/O; id encodes a key.
func (s AuthoritySet) validate(id func(crypto.PublicKey) string) error {
	if len(s.Authorities) == 0 {
		return errors.New("no authorities")
	}
	if s.Threshold < 0 {
		return fmt.Errorf("threshold %d is negative", s.Threshold)
	}
	for _, a := range s.Authorities {
		if a.Key == nil {
			return fmt.Errorf("authority %q has no key", a.Name)
		}
		if err := checkKey(a.Key); err != nil {
			return fmt.Errorf("authority %q: %w", a.Name, err)
		}
	}
	if n := len(distinctKeys(s.Authorities, id)); s.threshold() > n {
		return fmt.Errorf("threshold %d is more than the %d distinct keys", s.threshold(), n)
	}
	return nil
}

// Fingerprint identifies the set for the verdict cache: a hash of the
// sorted, de-duplicated PKIX DER keys and the effective threshold. Names are
// excluded and order does not matter, so the same keys in two namespaces
// share verdicts while any key or threshold change gives a new fingerprint.
// Keys that cannot be marshalled contribute their Go type name, which keeps
// the function total; such sets fail validation anyway.
func (s AuthoritySet) Fingerprint() string {
	return fingerprint(s, keyID)
}

// distinctKeys returns the sorted, de-duplicated DER encodings of the keys.
func distinctKeys(as []Authority, id func(crypto.PublicKey) string) []string {
	keys := make([]string, 0, len(as))
	for _, a := range as {
		keys = append(keys, id(a.Key))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// keyID is the PKIX DER encoding of key as a string.
func keyID(key crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return fmt.Sprintf("invalid:%T", key)
	}
	return string(der)
}
