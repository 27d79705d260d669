package admission

import (
	"github.com/google/go-containerregistry/pkg/name"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/verifier"
)

// refCacheSize bounds the parsed-reference cache: a cluster runs far fewer
// distinct image strings, and a hostile stream of new ones only evicts.
const refCacheSize = 4096

// parsedRef is an image string parsed once: the canonical reference and
// repository, or why it is not a valid reference.
type parsedRef struct {
	ref  name.Reference
	name string        // canonical reference, ref.Name()
	repo imageref.Repo // canonical repository, for policy matching
	err  error
}

// refCache memoizes verifier.ParseReference, which costs more than the
// rest of a cached review's decision (go-containerregistry parses the
// registry as a URL). Parsing is a pure function of the string, so errors
// are cached too. Safe for concurrent use.
type refCache struct {
	lru *lru.Cache[string, parsedRef]
}

func newRefCache() *refCache {
	c, err := lru.New[string, parsedRef](refCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &refCache{lru: c}
}

// parse returns the parsed form of image.
func (c *refCache) parse(image string) parsedRef {
	if p, ok := c.lru.Get(image); ok {
		return p
	}
	p := parsedRef{}
	p.ref, p.err = verifier.ParseReference(image)
	if p.err == nil {
		p.name, p.repo = p.ref.Name(), verifier.Repository(p.ref)
	}
	c.lru.Add(image, p)
	return p
}
