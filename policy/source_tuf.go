package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// TUF TrustRoots (spec.tuf): the gate fetches the trusted_root.json
// target of a TUF repository, verified from an initial root.json, with
// ClusterOptions.FetchTUF, and refreshes it every refreshInterval. A
// TrustRoot's first fetch happens before the compilation that first needs
// it (bounded by ClusterOptions.Timeout); refreshes run in the
// background and recompile when the content changed. A failed refresh
// keeps the last trusted root fetched (the metric
// signgate_trustroot_age_seconds says how old it is) and is retried after
// tufRetry. Policies naming a TUF TrustRoot that was never fetched are
// invalid, saying why.

const (
	// DefaultTUFRefresh is spec.tuf.refreshInterval's default.
	DefaultTUFRefresh = time.Hour
	// minTUFRefresh is the shortest refreshInterval accepted.
	minTUFRefresh = time.Second
	// tufRetry is how soon a failed fetch is tried again (or the
	// refreshInterval, when shorter).
	tufRetry = 30 * time.Second
	// tufFetchLimit bounds how many repositories are read at once.
	tufFetchLimit = 4
)

// FetchTUF returns the trusted_root.json target of the TUF repository at
// mirror, verified from root (an initial root.json).
type FetchTUF func(ctx context.Context, mirror string, root []byte) ([]byte, error)

// tufKey identifies what is fetched for a TUF TrustRoot: a changed
// mirror or initial root is another fetch, never the old content.
type tufKey struct {
	Name   string // the TrustRoot
	Mirror string
	Root   string // hex SHA-256 of the initial root.json
}

// tufWant is a TUF TrustRoot a compilation needs.
type tufWant struct {
	key      tufKey
	root     []byte
	interval time.Duration
}

type tufEntry struct {
	data    []byte    // last trusted root fetched; nil before the first success
	fetched time.Time // when data was fetched
	err     error     // the last attempt's error; nil after a success
	next    time.Time // when the next fetch is due
}

// TrustRootStatus is the state of one TUF TrustRoot's trusted root.
type TrustRootStatus struct {
	Name   string
	Mirror string
	// Fetched is when the trusted root in use was fetched; zero when none
	// has been yet.
	Fetched time.Time
	// Err is the last attempt's error (nil after a success): with a
	// non-zero Fetched, the last good trusted root is still in use.
	Err error
}

// tufCache holds the trusted roots fetched for TUF TrustRoots. Safe for
// concurrent use.
type tufCache struct {
	fetch FetchTUF
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	entries map[tufKey]*tufEntry
}

func newTUFCache(fetch FetchTUF, log *slog.Logger) *tufCache {
	return &tufCache{fetch: fetch, now: time.Now, log: log, entries: map[tufKey]*tufEntry{}}
}

// split sorts wants into those never fetched (absent) and those whose next
// fetch is due; others are in neither.
func (c *tufCache) split(wants []tufWant) (absent, due []tufWant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, w := range wants {
		e, ok := c.entries[w.key]
		switch {
		case !ok:
			absent = append(absent, w)
		case !now.Before(e.next):
			due = append(due, w)
		}
	}
	return absent, due
}

// nextDue is the earliest time a fetch of wants is due, zero if none.
func (c *tufCache) nextDue(wants []tufWant) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, w := range wants {
		if e, ok := c.entries[w.key]; ok && (next.IsZero() || e.next.Before(next)) {
			next = e.next
		}
	}
	return next
}

// fetchAll fetches wants, at most tufFetchLimit at once, each bounded by
// timeout, and reports whether a trusted root in use changed.
func (c *tufCache) fetchAll(ctx context.Context, wants []tufWant, timeout time.Duration) bool {
	var (
		g       errgroup.Group
		changed atomic.Bool
	)
	g.SetLimit(tufFetchLimit)
	for _, w := range wants {
		g.Go(func() error {
			fctx, cancel := context.WithTimeout(ctx, timeout)
			data, err := c.fetch(fctx, w.key.Mirror, w.root)
			cancel()
			if ctx.Err() != nil {
				return nil // shutting down: says nothing about the repository
			}
			now := c.now()
			c.mu.Lock()
			defer c.mu.Unlock()
			e, ok := c.entries[w.key]
			if !ok {
				e = &tufEntry{}
				c.entries[w.key] = e
			}
			if err != nil {
				e.err = err
				e.next = now.Add(min(w.interval, tufRetry))
				if !ok {
					changed.Store(true)
				}
				if e.data != nil {
					c.log.Warn("TUF TrustRoot not refreshed: keeping the last trusted root", "trustroot", w.key.Name,
						"mirror", w.key.Mirror, "age_seconds", now.Sub(e.fetched).Round(time.Second).Seconds(), "retry_seconds", e.next.Sub(now).Seconds(), "err", err)
				} else {
					c.log.Error("TUF TrustRoot not fetched: the policies naming it are invalid", "trustroot", w.key.Name,
						"mirror", w.key.Mirror, "retry_seconds", e.next.Sub(now).Seconds(), "err", err)
				}
				return nil
			}
			if !bytes.Equal(data, e.data) {
				changed.Store(true)
				c.log.Info("TUF TrustRoot fetched: new trusted root", "trustroot", w.key.Name, "mirror", w.key.Mirror, "bytes", len(data))
			}
			e.data, e.fetched, e.err, e.next = data, now, nil, now.Add(w.interval)
			return nil
		})
	}
	_ = g.Wait()
	return changed.Load()
}

// current is the trusted root in use for key: the last one fetched, even
// when later attempts failed; an error only when none was ever fetched.
func (c *tufCache) current(key tufKey) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	switch {
	case !ok:
		return nil, fmt.Errorf("not fetched yet from %s", key.Mirror)
	case e.data == nil:
		return nil, fmt.Errorf("not fetched from %s: %w", key.Mirror, e.err)
	}
	return e.data, nil
}

// retain drops the entries wants does not name: TrustRoots no policy
// uses any more, old mirrors and initial roots.
func (c *tufCache) retain(wants []tufWant) {
	keep := make(map[tufKey]bool, len(wants))
	for _, w := range wants {
		keep[w.key] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k] {
			delete(c.entries, k)
		}
	}
}

// status lists the TUF TrustRoots' states, sorted by name.
func (c *tufCache) status() []TrustRootStatus {
	c.mu.Lock()
	out := make([]TrustRootStatus, 0, len(c.entries))
	for k, e := range c.entries {
		out = append(out, TrustRootStatus{Name: k.Name, Mirror: k.Mirror, Fetched: e.fetched, Err: e.err})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b TrustRootStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// tufSpec checks spec.tuf and reads its initial root: the key, the root
// and the refresh interval.
func (c *compiler) tufSpec(name string, t *v1alpha1.TUFSource) (tufWant, error) {
	u, err := url.Parse(t.Mirror)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return tufWant{}, fmt.Errorf("tuf.mirror %q: want an http or https URL", t.Mirror)
	}
	interval := DefaultTUFRefresh
	if t.RefreshInterval != nil {
		interval = t.RefreshInterval.Duration
	}
	if interval < minTUFRefresh {
		return tufWant{}, fmt.Errorf("tuf.refreshInterval %s: want at least %s", interval, minTUFRefresh)
	}
	root, err := c.trustedRootJSON(t.Root)
	if err != nil {
		return tufWant{}, fmt.Errorf("tuf.root: %w", err)
	}
	sum := sha256.Sum256(root)
	return tufWant{key: tufKey{Name: name, Mirror: t.Mirror, Root: hex.EncodeToString(sum[:])}, root: root, interval: interval}, nil
}

// tufTrustedRoot is the trusted root last fetched for a TUF TrustRoot.
func (c *compiler) tufTrustedRoot(name string, t *v1alpha1.TUFSource) ([]byte, error) {
	w, err := c.tufSpec(name, t)
	if err != nil {
		return nil, err
	}
	if c.structural {
		return nil, nil // the repository is not read in structural checks
	}
	if c.tufData == nil {
		return nil, errors.New("tuf: only `signgate serve` against a cluster fetches TUF repositories; give this TrustRoot's trusted_root.json instead (spec.trustedRoot, or --trusted-root NAME=FILE)")
	}
	return c.tufData(w.key)
}

// tufWants lists the TUF TrustRoots objs' keyless authorities name;
// TrustRoots whose spec is unusable are left to the compilation to report.
func (c *compiler) tufWants(objs []*policyObject) []tufWant {
	var wants []tufWant
	for _, tr := range c.namedTrustRoots(objs) {
		if tr.Spec.TUF == nil {
			continue
		}
		if w, err := c.tufSpec(tr.Name, tr.Spec.TUF); err == nil {
			wants = append(wants, w)
		}
	}
	return wants
}
