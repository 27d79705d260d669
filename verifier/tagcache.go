package verifier

import (
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/hashicorp/golang-lru/v2/expirable"
)

// tagCache maps canonical tags to digests for Options.TagTTL. A nil
// *tagCache stores nothing.
type tagCache struct {
	lru *expirable.LRU[string, name.Digest]
}

func newTagCache(o Options) *tagCache {
	if o.TagTTL < 0 {
		return nil
	}
	size := o.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &tagCache{lru: expirable.NewLRU[string, name.Digest](size, nil, o.TagTTL)}
}

func (c *tagCache) get(key string) (name.Digest, bool) {
	if c == nil {
		return name.Digest{}, false
	}
	return c.lru.Get(key)
}

func (c *tagCache) put(key string, d name.Digest) {
	if c != nil {
		c.lru.Add(key, d)
	}
}
