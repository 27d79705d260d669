package verifier

import (
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/hashicorp/golang-lru/v2/expirable"
)

// verdictCache holds definite answers: verified for Options.TTL, not
// verified for Options.FailureTTL, each in its own expirable LRU so that
// each keeps its own TTL. Undecided answers are never stored. A nil
// *verdictCache stores nothing.
type verdictCache struct {
	verified *expirable.LRU[string, []string]          // PKIX encodings of the keys that verified
	failed   *expirable.LRU[string, *NotVerifiedError] // nil when FailureTTL < 0
}

type verdict struct {
	verified []string
	err      *NotVerifiedError
}

func newVerdictCache(o Options) *verdictCache {
	if o.CacheSize < 0 {
		return nil
	}
	c := &verdictCache{verified: expirable.NewLRU[string, []string](o.CacheSize, nil, o.TTL)}
	if o.FailureTTL > 0 {
		c.failed = expirable.NewLRU[string, *NotVerifiedError](o.CacheSize, nil, o.FailureTTL)
	}
	return c
}

// verdictKey is the one place a cache key is built: canonical repository
// and digest plus the authority-set fingerprint.
func verdictKey(d name.Digest, fingerprint string) string {
	return d.String() + "#" + fingerprint
}

func (c *verdictCache) get(key string) (verdict, bool) {
	if c == nil {
		return verdict{}, false
	}
	if names, ok := c.verified.Get(key); ok {
		return verdict{verified: names}, true
	}
	if c.failed == nil {
		return verdict{}, false
	}
	nv, ok := c.failed.Get(key)
	return verdict{err: nv}, ok
}

func (c *verdictCache) put(key string, verified []string, err error) {
	if c == nil {
		return
	}
	var nv *NotVerifiedError
	switch {
	case err == nil:
		c.verified.Add(key, verified)
		if c.failed != nil {
			c.failed.Remove(key)
		}
	case asNotVerified(err, &nv) && c.failed != nil:
		c.failed.Add(key, nv)
	}
}
