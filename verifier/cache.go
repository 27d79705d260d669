package verifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
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

// ResolveCached returns what Resolve would answer without registry I/O:
// the digest of a digest reference, or of a tag whose digest is cached
// (counted as a tag cache hit, as Resolve counts it). ok is false when
// only Resolve can answer: a tag not cached, or an invalid reference.
// It lets a caller with many references resolve the cached ones on its
// own goroutine and start goroutines only for the rest.
func (v *Verifier) ResolveCached(ref name.Reference) (d name.Digest, ok bool) {
	if d, ok := ref.(name.Digest); ok {
		d, err := canonicalDigest(d) // no parsing when d is canonical already
		return d, err == nil
	}
	c, err := canonical(ref)
	if err != nil {
		return name.Digest{}, false
	}
	if d, ok := c.(name.Digest); ok {
		return d, true
	}
	if d, ok = v.tags.get(c.(name.Tag).String()); ok { // Resolve's key
		v.opts.Observer.CacheRequest("tag", "hit")
	}
	return d, ok
}

// flightGroup shares one run of fn among concurrent callers of the same
// key. The run uses a context detached from any single caller, with its
// own deadline, and is cancelled only when every waiting caller has gone.
//
// A panic in fn is recovered in the run itself: singleflight would
// re-panic it on a goroutine of its own, where nothing can recover it,
// and the process would exit. It becomes errInternal for every waiter
// (an undecided answer, never cached), is logged once with its stack and
// counted with Observer.Panic(op), and reset runs.
type flightGroup struct {
	op  string   // "verify" | "resolve": names the work in logs and metrics
	obs Observer // nil records nothing
	// reset runs after a recovered panic (nil: nothing). The Verifier
	// renews its registry session: a panic inside go-containerregistry's
	// per-repository setup (a sync.Once) would leave it half-built for
	// the life of the Puller.
	reset func()
	g     singleflight.Group
	mu    sync.Mutex
	calls map[string]*flightCall
}

// errInternal is the cause of an answer whose work panicked: a bug,
// usually in a library, set off by what a registry returned.
var errInternal = errors.New("an internal error occurred while reading the registry's data; please report it")

type flightCall struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiters int
}

// do runs fn once per key at a time and returns its result, or ctx's error
// if the caller gives up first.
func (f *flightGroup) do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (any, error)) (any, error) {
	c := f.join(ctx, key, timeout)
	ch := f.g.DoChan(key, func() (val any, err error) {
		defer f.finish(key, c)
		defer func() {
			if p := recover(); p != nil {
				val, err = nil, f.recovered(key, p)
			}
		}()
		return fn(c.ctx)
	})
	select {
	case r := <-ch:
		f.leave(key, c)
		return r.Val, r.Err
	case <-ctx.Done():
		f.leave(key, c)
		return nil, ctx.Err()
	}
}

// recovered logs and counts a panic of the work for key and returns the
// error every waiter gets.
func (f *flightGroup) recovered(key string, p any) error {
	slog.Error("panic in "+f.op+" (recovered)", "op", f.op, "key", key, "panic", p, "stack", string(debug.Stack()))
	if f.obs != nil {
		f.obs.Panic(f.op)
	}
	if f.reset != nil {
		f.reset()
	}
	return fmt.Errorf("%w: panic: %v", errInternal, p)
}

func (f *flightGroup) join(ctx context.Context, key string, timeout time.Duration) *flightCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = make(map[string]*flightCall)
	}
	c := f.calls[key]
	if c == nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		c = &flightCall{ctx: wctx, cancel: cancel}
		f.calls[key] = c
	}
	c.waiters++
	return c
}

// finish runs when the shared work returns: later callers start afresh.
func (f *flightGroup) finish(key string, c *flightCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
}

// leave cancels the shared work when its last waiter has gone, and makes
// sure a later caller does not join the cancelled run.
func (f *flightGroup) leave(key string, c *flightCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.waiters--
	if c.waiters > 0 {
		return
	}
	c.cancel()
	if f.calls[key] == c {
		delete(f.calls, key)
		f.g.Forget(key)
	}
}

// layoutHints remembers, per repository, whether signatures were last
// found as bundles, so that the next cold verification reads that layout
// first. A wrong hint costs one request, never a wrong answer.
type layoutHints struct {
	lru *expirable.LRU[string, bool]
}

func newLayoutHints() *layoutHints {
	return &layoutHints{lru: expirable.NewLRU[string, bool](4096, nil, 0)}
}

func (h *layoutHints) bundlesFirst(repo string) bool {
	b, _ := h.lru.Peek(repo)
	return b
}

func (h *layoutHints) record(repo string, bundles bool) {
	if bundles || h.lru.Contains(repo) {
		h.lru.Add(repo, bundles)
	}
}
