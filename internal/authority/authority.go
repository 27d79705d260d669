// Package authority is what a signature is verified against: trusted
// public keys and keyless identities (keyless.go) with the names reported
// when they verify, and sets of them with a threshold. It is the one
// parser of authority keys, the one compiler of keyless identities and the
// one place that says what a valid set is, shared by policy compilation
// (package policy) and verification (package verifier). It does no I/O;
// authority.go imports only the standard library, keyless.go also
// sigstore-go's trust material type.
package authority

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/signgate/signgate/internal/attestation"
)

// MinRSABits is the smallest RSA modulus accepted as an authority key.
const MinRSABits = 2048

// Authority is one trusted signer, by exactly one of a public key and a
// keyless identity, and the name reported when it verifies.
type Authority struct {
	Name    string
	Key     crypto.PublicKey // *ecdsa.PublicKey (P-256, P-384), *rsa.PublicKey (>= 2048 bits) or ed25519.PublicKey
	Keyless *Keyless         // from NewKeyless
	// Attestations the authority must also have signed about the image
	// (attestation.Compile); it counts only when its signature verifies
	// and every one of them is satisfied.
	Attestations []*attestation.Requirement
}

// ParsePublicKey parses exactly one PEM "PUBLIC KEY" block (PKIX), such as
// cosign.pub, holding a key CheckKey accepts. Text after the block other
// than white space is an error: a second key would otherwise be dropped
// without a word.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse public key: no PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("parse public key: PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("parse public key: more than one PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	return key, nil
}

// CheckKey accepts the key types cosign signs with: ECDSA P-256 and P-384,
// RSA of at least MinRSABits, and Ed25519.
func CheckKey(key crypto.PublicKey) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k == nil {
			return errors.New("no key")
		}
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s not supported, want P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k == nil {
			return errors.New("no key")
		}
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits, want at least %d", k.N.BitLen(), MinRSABits)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key of %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
	case nil:
		return errors.New("no key")
	default:
		return fmt.Errorf("key type %T not supported, want ECDSA P-256/P-384, RSA or Ed25519", key)
	}
	return nil
}

// Set is what a digest is verified against: at least Threshold distinct
// keys or keyless identities among its authorities must have signed it.
// Two authorities with the same key, or the same keyless trust root,
// identities and extensions, count once.
//
// A Set is built once, by NewSet, which validates it and derives what
// every verification needs (key encodings, fingerprint); it is immutable
// and safe to share. The zero Set has no authorities and verifies nothing.
type Set struct {
	members     []member
	threshold   int
	fingerprint string
}

type member struct {
	Authority
	id     string // PKIX DER of Key; for Keyless, a hash of what it accepts
	attest string // what its Attestations accept (attestKey)
}

// NewSet validates a set and returns it. threshold 0 means 1; otherwise it
// must be between 1 and the number of distinct keys. authorities is
// copied.
func NewSet(threshold int, authorities ...Authority) (Set, error) {
	if len(authorities) == 0 {
		return Set{}, errors.New("no authorities")
	}
	if threshold < 0 {
		return Set{}, fmt.Errorf("threshold %d is negative", threshold)
	}
	s := Set{members: make([]member, len(authorities)), threshold: max(threshold, 1)}
	for i, a := range authorities {
		if a.Keyless != nil {
			if a.Key != nil {
				return Set{}, fmt.Errorf("authority %q: has both a key and a keyless identity; give one", a.Name)
			}
			if a.Keyless.id == "" {
				return Set{}, fmt.Errorf("authority %q: keyless authority not made by NewKeyless", a.Name)
			}
			s.members[i] = member{Authority: a, id: a.Keyless.id}
			continue
		}
		if err := CheckKey(a.Key); err != nil {
			return Set{}, fmt.Errorf("authority %q: %w", a.Name, err)
		}
		der, err := x509.MarshalPKIXPublicKey(a.Key)
		if err != nil {
			return Set{}, fmt.Errorf("authority %q: encode key: %w", a.Name, err)
		}
		s.members[i] = member{Authority: a, id: string(der)}
	}
	attestOf := make(map[string]member)
	for i := range s.members {
		m := &s.members[i]
		key, err := attestKey(m.Attestations)
		if err != nil {
			return Set{}, fmt.Errorf("authority %q: %w", m.Name, err)
		}
		m.attest = key
		if other, ok := attestOf[m.id]; ok && other.attest != m.attest {
			return Set{}, fmt.Errorf("authorities %q and %q trust the same signer with different attestations; list the attestations under one authority", other.Name, m.Name)
		}
		attestOf[m.id] = *m
	}
	ids := s.distinctIDs()
	if s.threshold > len(ids) {
		return Set{}, fmt.Errorf("threshold %d is more than the %d distinct authorities (authorities with the same key or keyless identities count once)", s.threshold, len(ids))
	}
	for i, id := range ids { // the fingerprint covers the attestations each signer must show
		if a := attestOf[id].attest; a != "" {
			ids[i] = id + "\x00attestations\x00" + a
		}
	}
	s.fingerprint = fingerprint(s.threshold, ids)
	return s, nil
}

// Threshold is how many distinct keys must verify (at least 1 for a set
// from NewSet, 0 for the zero Set).
func (s Set) Threshold() int { return s.threshold }

// Len is the number of authorities, duplicates of a key included.
func (s Set) Len() int { return len(s.members) }

// All yields each authority with its key's identity: equal keys have equal
// identities, whatever the authorities are called.
func (s Set) All() iter.Seq2[string, Authority] {
	return func(yield func(string, Authority) bool) {
		for _, m := range s.members {
			if !yield(m.id, m.Authority) {
				return
			}
		}
	}
}

// Names returns the authorities' names, sorted and de-duplicated.
func (s Set) Names() []string {
	names := make([]string, len(s.members))
	for i, m := range s.members {
		names[i] = m.Name
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Fingerprint identifies the set for a verdict cache: a hash of the
// sorted, de-duplicated PKIX DER keys and keyless identities (their trust
// root's content included), the attestations each must show (predicate
// types, condition and message text) and the threshold. Names are
// excluded and order does not matter, so the same keys in two namespaces
// share verdicts while any key or threshold change gives a new
// fingerprint. The zero Set's fingerprint is "".
func (s Set) Fingerprint() string { return s.fingerprint }

// distinctIDs returns the sorted, de-duplicated key identities.
func (s Set) distinctIDs() []string {
	ids := make([]string, len(s.members))
	for i, m := range s.members {
		ids[i] = m.id
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func fingerprint(threshold int, ids []string) string {
	h := sha256.New()
	var buf [8]byte
	h.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(threshold)))
	for _, id := range ids {
		h.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(len(id))))
		h.Write([]byte(id))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// attestKey identifies a list of attestation requirements (order and
// duplicates aside); "" for none.
func attestKey(reqs []*attestation.Requirement) (string, error) {
	if len(reqs) == 0 {
		return "", nil
	}
	keys := make([]string, len(reqs))
	names := make(map[string]bool)
	for i, r := range reqs {
		if r == nil {
			return "", errors.New("attestation requirement not made by attestation.Compile")
		}
		if names[r.Name] {
			return "", fmt.Errorf("attestation %q listed twice", r.Name)
		}
		names[r.Name] = true
		keys[i] = r.Key()
	}
	slices.Sort(keys)
	return strings.Join(keys, ","), nil
}

// Attested reports whether any authority of the set requires
// attestations.
func (s Set) Attested() bool {
	for _, m := range s.members {
		if m.attest != "" {
			return true
		}
	}
	return false
}
