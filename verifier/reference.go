package verifier

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseReference parses an image string into its canonical reference: the
// registry host lower-cased, docker.io written index.docker.io, one-segment
// Docker Hub names under library/, and a reference carrying both a tag and a
// digest reduced to its digest (the tag never grants trust). A reference
// without tag or digest gets the tag "latest".
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
	return name.NewDigest(canonicalRepository(d.Context()) + "@" + d.DigestStr())
}

func canonicalRepository(repo name.Repository) string {
	host := strings.ToLower(repo.RegistryStr())
	path := repo.RepositoryStr()
	if host == "docker.io" {
		host = name.DefaultRegistry
	}
	if host == name.DefaultRegistry && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	return host + "/" + path
}
