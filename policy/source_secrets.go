package policy

import (
	"bytes"
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// secretReadLimit bounds how many Secrets one compilation reads at once.
const secretReadLimit = 8

// secretCache reads Secrets on demand. A successful read is kept for ttl; a
// failed one (not found, forbidden, timeout, any other error) is kept for
// failTTL, so a policy pointing at missing Secrets costs one read per Secret
// per failTTL instead of one per compilation. The price: a Secret created a
// moment after a failed read is seen only once failTTL has passed (at the
// first compilation after that).
//
// Safe for concurrent use: fill reads several Secrets at once.
type secretCache struct {
	read    func(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	ttl     time.Duration
	failTTL time.Duration
	now     func() time.Time

	mu      sync.Mutex
	entries map[secretName]secretEntry
}

// secretName is a Secret's namespace and name.
type secretName struct{ Namespace, Name string }

type secretEntry struct {
	data    map[string][]byte
	err     error // the read failed; data is nil
	expires time.Time
}

func newSecretCache(kube kubernetes.Interface, ttl, failTTL time.Duration) *secretCache {
	return &secretCache{
		read: func(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
			return kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		},
		ttl: ttl, failTTL: failTTL, now: time.Now, entries: map[secretName]secretEntry{},
	}
}

// newConfigMapCache is a secretCache over ConfigMaps (data and binaryData
// merged), for TrustRoot configMapRefs.
func newConfigMapCache(kube kubernetes.Interface, ttl, failTTL time.Duration) *secretCache {
	c := newSecretCache(kube, ttl, failTTL)
	c.read = func(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
		cm, err := kube.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &corev1.Secret{ObjectMeta: cm.ObjectMeta, Data: configMapData(cm)}, nil
	}
	return c
}

// cached returns the unexpired entry for key, if any.
func (c *secretCache) cached(key secretName) (secretEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		return secretEntry{}, false
	}
	return e, true
}

// get returns a Secret's data, from the cache while its entry (success or
// failure) has not expired, else read from the API.
func (c *secretCache) get(ctx context.Context, namespace, name string, timeout time.Duration) (map[string][]byte, error) {
	key := secretName{namespace, name}
	if e, ok := c.cached(key); ok {
		return e.data, e.err
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.read(rctx, namespace, name)
	var e secretEntry
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the error says nothing about the Secret.
		return nil, err
	case err != nil:
		e = secretEntry{err: err, expires: c.now().Add(c.failTTL)}
	default:
		e = secretEntry{data: s.Data, expires: c.now().Add(c.ttl)}
	}
	c.mu.Lock()
	c.entries[key] = e
	c.mu.Unlock()
	return e.data, e.err
}

// fill reads the Secrets of keys that are not cached, at most
// secretReadLimit at once, so the compilation that follows finds them all
// in the cache (as data or as a cached failure) instead of reading them one
// by one.
func (c *secretCache) fill(ctx context.Context, keys []secretName, timeout time.Duration) {
	var g errgroup.Group
	g.SetLimit(secretReadLimit)
	for _, k := range keys {
		if _, ok := c.cached(k); ok {
			continue
		}
		g.Go(func() error {
			_, _ = c.get(ctx, k.Namespace, k.Name, timeout) // the error is cached
			return nil
		})
	}
	_ = g.Wait()
}

// current returns a Secret's data or cached failure even when its entry
// has expired (a refresh is then under way, see refresh), and reads it only
// when the cache has never had it: a compilation never waits for a
// re-read.
func (c *secretCache) current(ctx context.Context, namespace, name string, timeout time.Duration) (map[string][]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[secretName{namespace, name}]
	c.mu.Unlock()
	if ok {
		return e.data, e.err
	}
	return c.get(ctx, namespace, name, timeout)
}

// split sorts keys into those the cache has never had (absent) and those
// whose entry has expired; keys with a live entry are in neither.
func (c *secretCache) split(keys []secretName) (absent, expired []secretName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, k := range keys {
		e, ok := c.entries[k]
		switch {
		case !ok:
			absent = append(absent, k)
		case !now.Before(e.expires):
			expired = append(expired, k)
		}
	}
	return absent, expired
}

// refresh re-reads keys, at most secretReadLimit at once, and reports
// whether any answer changed (data, or success against failure).
func (c *secretCache) refresh(ctx context.Context, keys []secretName, timeout time.Duration) bool {
	var (
		g       errgroup.Group
		changed atomic.Bool
	)
	g.SetLimit(secretReadLimit)
	for _, k := range keys {
		c.mu.Lock()
		old, had := c.entries[k]
		c.mu.Unlock()
		g.Go(func() error {
			data, err := c.get(ctx, k.Namespace, k.Name, timeout)
			if ctx.Err() != nil {
				return nil
			}
			if !had || (err == nil) != (old.err == nil) || !maps.EqualFunc(data, old.data, bytes.Equal) {
				changed.Store(true)
			}
			return nil
		})
	}
	_ = g.Wait()
	return changed.Load()
}

// retain drops the entries of Secrets that keys does not name, so Secrets
// no policy references any more do not stay in memory.
func (c *secretCache) retain(keys []secretName) {
	keep := make(map[secretName]bool, len(keys))
	for _, k := range keys {
		keep[k] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k] {
			delete(c.entries, k)
		}
	}
}

// prune drops expired entries, so Secrets no policy references any more do
// not stay in memory.
func (c *secretCache) prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
}
