package verifier

import (
	"crypto"

	"github.com/signgate/signgate/internal/authority"
)

// Authority is one trusted signer: a public key and the name reported when
// it verifies (internal/authority, shared with policy compilation).
type Authority = authority.Authority

// AuthoritySet is what a digest is verified against: at least its
// threshold of distinct keys must have signed it. Build it once with
// NewAuthoritySet, which validates it and derives its fingerprint; it is
// immutable and safe to share. The zero set verifies nothing.
type AuthoritySet = authority.Set

// NewAuthoritySet validates authorities and a threshold (0 means 1; at
// most the number of distinct keys) and returns the set.
func NewAuthoritySet(threshold int, authorities ...Authority) (AuthoritySet, error) {
	return authority.NewSet(threshold, authorities...)
}

// ParsePublicKey parses one PEM "PUBLIC KEY" block (PKIX) holding an ECDSA
// P-256 or P-384, RSA (at least 2048 bits) or Ed25519 key.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	return authority.ParsePublicKey(data)
}
