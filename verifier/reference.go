package verifier

import (
	"fmt"

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
// e.g. "index.docker.io/library/nginx", typed as canonical so that policy
// matching takes it as it is. It canonicalizes ref first, so it is safe to
// call on references that did not come from ParseReference.
func Repository(ref name.Reference) imageref.Repo {
	return imageref.RepoOf(ref.Context().RegistryStr(), ref.Context().RepositoryStr())
}

// canonical rebuilds ref from its canonical repository and identifier,
// or returns ref itself, without parsing, when it is canonical already
// (every reference ParseReference returned).
func canonical(ref name.Reference) (name.Reference, error) {
	if err := checkRepository(ref.Context()); err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	if isCanonical(ref) {
		return ref, nil
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
	c, err := canonical(d)
	if err != nil {
		return name.Digest{}, err
	}
	return c.(name.Digest), nil // canonical keeps the kind of reference
}

// isCanonical is canonical's allocation-free fast path: ref prints as
// exactly its canonical repository, then ":" and the tag or "@" and the
// digest. The reference grammar (checkRepository) is checked apart.
func isCanonical(ref name.Reference) bool {
	repo := ref.Context()
	host, path := repo.RegistryStr(), repo.RepositoryStr()
	if !imageref.IsCanonical(host, path) {
		return false
	}
	delim := byte('@')
	if _, ok := ref.(name.Tag); ok {
		delim = ':'
	}
	s, id := ref.String(), ref.Identifier()
	n := len(host) + 1 + len(path) // length of "host/path"
	return len(s) == n+1+len(id) &&
		s[:len(host)] == host && s[len(host)] == '/' && s[len(host)+1:n] == path &&
		s[n] == delim && s[n+1:] == id
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
