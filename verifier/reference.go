package verifier

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/imageref"
)

// ParseReference parses an image string into its canonical reference
// (internal/imageref, shared with policy matching): the registry host
// lower-cased and without ":443", every Docker Hub alias (docker.io,
// registry-1.docker.io, no host) written index.docker.io, one-segment Docker
// Hub names under library/, and a reference carrying both a tag and a
// digest reduced to its digest (the tag never grants trust). A reference
// without tag or digest gets the tag "latest". Names the distribution
// reference grammar rejects ("a//b", "a..b", "-a") are errors.
func ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", s, err)
	}
	return canonical(ref)
}

// Repository returns the canonical repository of ref without tag or digest,
// e.g. "index.docker.io/library/nginx". It canonicalizes ref first, so it
// is safe to call on references that did not come from ParseReference.
func Repository(ref name.Reference) string {
	return canonicalRepository(ref.Context())
}

// canonical rebuilds ref from its canonical repository and identifier.
func canonical(ref name.Reference) (name.Reference, error) {
	if err := checkRepository(ref.Context()); err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	repo := canonicalRepository(ref.Context())
	switch r := ref.(type) {
	case name.Digest:
		return name.NewDigest(repo + "@" + r.DigestStr())
	case name.Tag:
		return name.NewTag(repo + ":" + r.TagStr())
	default:
		return nil, fmt.Errorf("parse image reference %q: neither tag nor digest", ref)
	}
}

// canonicalDigest is canonical for digests, used on values callers built
// themselves.
func canonicalDigest(d name.Digest) (name.Digest, error) {
	if err := checkRepository(d.Context()); err != nil {
		return name.Digest{}, fmt.Errorf("parse image reference %q: %w", d, err)
	}
	if isCanonical(d) {
		return d, nil
	}
	return name.NewDigest(canonicalRepository(d.Context()) + "@" + d.DigestStr())
}

// isCanonical is canonicalDigest's allocation-free fast path: d prints as
// exactly its canonical repository, "@" and the digest.
func isCanonical(d name.Digest) bool {
	host, path := d.Context().RegistryStr(), d.Context().RepositoryStr()
	if !imageref.IsCanonical(host, path) {
		return false
	}
	s := d.String()
	base, _, ok := strings.Cut(s, "@")
	return ok && len(base) == len(host)+1+len(path) &&
		strings.HasPrefix(base, host) && base[len(host)] == '/' && strings.HasSuffix(base, path)
}

// canonicalRepository is imageref.Repository on a parsed repository.
func canonicalRepository(repo name.Repository) string {
	return imageref.Repository(repo.RegistryStr(), repo.RepositoryStr())
}

// checkRepository applies the reference grammar's rules that
// go-containerregistry does not check ("a//b", "a..b", "-a", "a_").
func checkRepository(repo name.Repository) error {
	return imageref.Check(repo.RegistryStr(), repo.RepositoryStr())
}
