package verifier

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
)

// TestMemoryBoundedByCacheSize: one Verifier verifies 10,000 distinct
// digests through the real path (registry requests, verdict cache,
// singleflight) and the state it keeps stays bounded by the cache size:
// cached verdicts, heap, singleflight maps, per-repository and tag state,
// goroutines.
//
// Most digests are unknown to the registry, so each gets a definite "no
// signatures found" (two registry requests, cached for FailureTTL); a few
// are real signed images (cached as verified), in a repository of their
// own: the test registry scans every manifest of a repository to answer
// a referrers request. Two repositories, so that what grows is
// per-digest state only.
//
// Not parallel: heap figures need the other tests of the package paused.
func TestMemoryBoundedByCacheSize(t *testing.T) {
	const (
		cacheSize = 1000
		total     = 10_000
		full      = 2000 // by then both verdict LRUs have seen > cacheSize digests
		signed    = 16
		workers   = 16
	)
	reg := registrytest.New(t)
	alice := registrytest.NewSigner(t)
	set := mustSet(t, Authority{Name: "alice", Key: alice.Public})
	var signedDigests []name.Digest
	for range signed {
		d := reg.PushImage(t, "team/signed", "")
		reg.Sign(t, alice, d, registrytest.Classic)
		signedDigests = append(signedDigests, d)
	}
	// digest(i) is built when needed: a slice of 10,000 digests would be
	// live at the first heap figure and dead at the last.
	digest := func(i int64) (name.Digest, error) {
		if i < signed {
			return signedDigests[i], nil
		}
		sum := sha256.Sum256(fmt.Appendf(nil, "unsigned %d", i))
		return name.NewDigest(fmt.Sprintf("%s/team/app@sha256:%x", reg.Host, sum), name.Insecure)
	}
	// The registry is served in process, without sockets: everything
	// above the base transport is the real path, and 20,000 loopback
	// round trips would take a minute under -race.
	v, err := New(Options{
		CacheSize:          cacheSize,
		TTL:                time.Hour, // see the heap bound below
		FailureTTL:         time.Hour,
		InsecureRegistries: []string{reg.Host},
		Transport:          reg.InProcess(),
	})
	if err != nil {
		t.Fatal(err)
	}

	var maxVerified, maxFailed atomic.Int64
	var verified, notVerified atomic.Int64
	// run verifies digests from (inclusive) to to (exclusive).
	run := func(from, to int64) {
		t.Helper()
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(from)
		for range workers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < to; i = next.Add(1) - 1 {
					d, err := digest(i)
					if err != nil {
						t.Error(err)
						return
					}
					_, err = v.Verify(t.Context(), d, set)
					var nv *NotVerifiedError
					switch {
					case err == nil:
						verified.Add(1)
					case errors.As(err, &nv) && nv.Reason == "no signatures found":
						notVerified.Add(1)
					default:
						t.Errorf("Verify(%s) = %v, want verified or no signatures found", d, err)
						return
					}
					storeMax(&maxVerified, int64(v.verdicts.verified.Len()))
					storeMax(&maxFailed, int64(v.verdicts.failed.Len()))
				}
			})
		}
		wg.Wait()
		reg.ResetRequests() // the test registry's request log is not the verifier's memory
	}

	run(0, workers) // the signed ones; ping and token
	heapBase, goBase := settledHeap(), runtime.NumGoroutine()
	run(workers, full)
	if t.Failed() {
		t.FailNow()
	}
	entriesFull := v.verdicts.verified.Len() + v.verdicts.failed.Len()
	heapFull, goFull := settledHeap(), runtime.NumGoroutine()
	run(full, total)
	if t.Failed() {
		t.FailNow()
	}
	entriesEnd := v.verdicts.verified.Len() + v.verdicts.failed.Len()
	heapEnd := settledHeap()
	goEnd := settledGoroutines(goFull + 4)
	// What the cached verdicts themselves hold: the heap they free.
	v.verdicts.verified.Purge()
	v.verdicts.failed.Purge()
	heapPurged := settledHeap()

	// Cached verdicts: each of the two LRUs (verified, and definite
	// failures, kept apart so that a flood of unsigned digests cannot
	// evict verified verdicts) holds at most CacheSize entries.
	if got := verified.Load() + notVerified.Load(); got != total {
		t.Fatalf("%d answers, want %d", got, total)
	}
	if mv, mf := maxVerified.Load(), maxFailed.Load(); mv > cacheSize || mf > cacheSize {
		t.Errorf("cache held up to %d verified and %d failed verdicts, want at most %d each", mv, mf, cacheSize)
	}
	if entriesEnd > 2*cacheSize {
		t.Errorf("%d cached verdicts at the end, want at most %d", entriesEnd, 2*cacheSize)
	}

	// Heap: from 2,000 to 10,000 digests the cache only replaces entries,
	// so the live heap may move by noise but not by the cost of 8,000
	// more entries. The per-entry cost is measured here as the heap the
	// cached verdicts free when purged. The bound is a sixteenth of what
	// keeping the 8,000 extra entries would cost (~240 KiB at ~485 bytes
	// per verdict), with a floor of 192 KiB: a leak of ~30 bytes per
	// digest (a map slot, a small slice element) fails it, while the
	// noise measured here is ~10-15 KiB.
	//
	// The TTLs are an hour so that the clock stays out of the figures:
	// the expirable LRU files each entry in one of 100 expiry buckets,
	// one per TTL/100 of time, each a map that never shrinks. With the
	// default 30s FailureTTL a new bucket starts every 300ms and keeps
	// room for the most entries it held at once, which adds up to ~30-60
	// bytes per addition until all 100 buckets have grown (at most 100
	// maps of CacheSize slots per LRU). That is bounded, but it is time,
	// not digests, and it would hide a leak of that size.
	perEntry := float64(heapEnd-heapPurged) / float64(entriesEnd)
	growth := heapEnd - heapFull
	limit := max(int64(perEntry*(total-full)/16), 192<<10)
	t.Logf("cached verdicts: %d at %d digests, %d at %d (max %d verified, %d failed; cache size %d)",
		entriesFull, full, entriesEnd, total, maxVerified.Load(), maxFailed.Load(), cacheSize)
	t.Logf("live heap: %.2f MiB after warm-up, %.2f MiB at %d digests, %.2f MiB at %d digests, %.2f MiB with the verdicts purged; growth %+.1f KiB (limit %.1f KiB)",
		mib(heapBase), mib(heapFull), full, mib(heapEnd), total, mib(heapPurged), float64(growth)/1024, float64(limit)/1024)
	t.Logf("about %.0f bytes per cached verdict (real path: LRU node, key, error); %d verified, %d not verified",
		perEntry, verified.Load(), notVerified.Load())
	t.Logf("goroutines: %d after warm-up, %d at %d digests, %d at %d digests", goBase, goFull, full, goEnd, total)
	if growth > limit {
		t.Errorf("live heap grew by %.1f KiB from %d to %d digests, want under %.1f KiB (cache is full at %d)",
			float64(growth)/1024, full, total, float64(limit)/1024, cacheSize)
	}

	// Other per-digest state.
	if goEnd > goFull+4 {
		t.Errorf("%d goroutines at the end, %d when the cache was full: per-digest goroutines leak", goEnd, goFull)
	}
	for name, f := range map[string]*flightGroup{"verdict": &v.flights, "resolve": &v.resolves} {
		f.mu.Lock()
		n := len(f.calls)
		f.mu.Unlock()
		if n != 0 {
			t.Errorf("%s singleflight still tracks %d calls after every caller returned", name, n)
		}
	}
	if n := v.tags.lru.Len(); n > cacheSize {
		t.Errorf("tag cache holds %d entries, want at most %d", n, cacheSize)
	}
	if n := v.layouts.lru.Len(); n > 2 {
		t.Errorf("layout hints hold %d repositories, want at most 2 (two repositories were used)", n)
	}
}

func storeMax(m *atomic.Int64, n int64) {
	for old := m.Load(); n > old && !m.CompareAndSwap(old, n); old = m.Load() {
	}
}

// settleGuard bounds the waits below. It only turns a hang into a
// failure: how long settling takes is not what these tests measure.
const settleGuard = 2 * time.Minute

// settledGoroutines waits for the goroutine count to drop to want (idle
// connections closing, servers' handlers returning) and returns the last
// count, which is above want only when settleGuard passed first.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(settleGuard); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// settledHeap is the live heap once collections stop freeing memory: a
// sync.Pool empties over two of them, and an object with a finalizer is
// freed by the collection after its finalizer ran. It polls until two
// collections in a row free less than 16 KiB, however long the finalizer
// goroutine takes to be scheduled (up to settleGuard).
func settledHeap() int64 {
	last := liveHeap()
	for deadline := time.Now().Add(settleGuard); time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // poll interval: let finalizers run
		n := liveHeap()
		if last-n < 16<<10 {
			return n
		}
		last = n
	}
	return last
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestMemoryBoundedAcrossRepositories: image strings come from tenants, so
// they choose how many distinct repositories the gate talks to. 5,000 pods
// naming 5,000 new repositories must not grow the heap past what the
// caches are sized for: go-containerregistry's Puller keeps a reader per
// repository for its whole life, so the Verifier replaces it every
// maxPullerRepos repositories (pullers).
func TestMemoryBoundedAcrossRepositories(t *testing.T) {
	const (
		cacheSize = 500
		total     = 5000
		full      = 2000 // the verdict cache is full and the Puller has been replaced once
		workers   = 16
	)
	reg := registrytest.New(t)
	set := mustSet(t, Authority{Name: "alice", Key: registrytest.NewSigner(t).Public})
	v, err := New(Options{
		CacheSize:          cacheSize,
		TTL:                time.Hour, // see TestMemoryBoundedByCacheSize
		FailureTTL:         time.Hour,
		InsecureRegistries: []string{reg.Host},
		Transport:          reg.InProcess(),
	})
	if err != nil {
		t.Fatal(err)
	}
	run := func(from, to int64) {
		t.Helper()
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(from)
		for range workers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < to; i = next.Add(1) - 1 {
					sum := sha256.Sum256(fmt.Appendf(nil, "repo %d", i))
					d, err := name.NewDigest(fmt.Sprintf("%s/tenant%d/app@sha256:%x", reg.Host, i, sum), name.Insecure)
					if err != nil {
						t.Error(err)
						return
					}
					_, err = v.Verify(t.Context(), d, set)
					if nv := (*NotVerifiedError)(nil); !errors.As(err, &nv) || nv.Reason != "no signatures found" {
						t.Errorf("Verify(%s) = %v, want no signatures found", d, err)
						return
					}
				}
			})
		}
		wg.Wait()
		reg.ResetRequests()
	}
	run(0, full)
	if t.Failed() {
		t.FailNow()
	}
	heapFull := settledHeap()
	run(full, total)
	if t.Failed() {
		t.FailNow()
	}
	heapEnd := settledHeap()
	repos, gens := v.pullers.stats()
	growth := heapEnd - heapFull
	// Without replacement each repository keeps ~450 bytes (more under
	// -race) in the Puller: 3,000 more repositories would add > 1.3 MiB.
	const limit = 512 << 10
	t.Logf("%d repositories: the current Puller serves %d of them, %d Pullers built; live heap %.2f MiB at %d, %.2f MiB at %d (growth %+.1f KiB, limit %d KiB)",
		total, repos, gens, mib(heapFull), full, mib(heapEnd), total, float64(growth)/1024, limit>>10)
	if repos > maxPullerRepos {
		t.Errorf("the Puller serves %d repositories, want at most %d", repos, maxPullerRepos)
	}
	if want := total / maxPullerRepos; gens < want {
		t.Errorf("%d Pullers built for %d repositories, want at least %d", gens, total, want)
	}
	if growth > limit {
		t.Errorf("live heap grew by %.1f KiB from %d to %d repositories, want under %d KiB", float64(growth)/1024, full, total, limit>>10)
	}
}

// mustSet is NewAuthoritySet with threshold 1 for tests.
func mustSet(t testing.TB, as ...Authority) AuthoritySet {
	t.Helper()
	set, err := NewAuthoritySet(0, as...)
	if err != nil {
		t.Fatal(err)
	}
	return set
}
