package policy

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// secretCache reads Secrets on demand and keeps successful reads for ttl.
// Failures are never cached: a Secret created a moment later is seen at the
// next compilation. Not safe for concurrent use (ClusterSource's Run
// goroutine owns it).
type secretCache struct {
	kube    kubernetes.Interface
	ttl     time.Duration
	now     func() time.Time
	entries map[string]secretEntry // "namespace/name"
}

type secretEntry struct {
	data    map[string][]byte
	expires time.Time
}

func newSecretCache(kube kubernetes.Interface, ttl time.Duration) *secretCache {
	return &secretCache{kube: kube, ttl: ttl, now: time.Now, entries: map[string]secretEntry{}}
}

func (c *secretCache) get(ctx context.Context, namespace, name string, timeout time.Duration) (map[string][]byte, error) {
	key := namespace + "/" + name
	if e, ok := c.entries[key]; ok && c.now().Before(e.expires) {
		return e.data, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	c.entries[key] = secretEntry{data: s.Data, expires: c.now().Add(c.ttl)}
	return s.Data, nil
}

// prune drops expired entries, so Secrets no policy references any more do
// not stay in memory.
func (c *secretCache) prune() {
	now := c.now()
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
}
