package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"
)

// soakDuration is how long TestServeSoak runs at least: 60s,
// SIGNGATE_SOAK_DURATION to change it, 5s with -short. The load goes on
// past it until it has had soakMinPerWorker reviews per worker answered,
// however slow the machine.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("SIGNGATE_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SIGNGATE_SOAK_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 60 * time.Second
}

// soakMinPerWorker is how many reviews per worker the soak has answered at
// least; warmUpPerWorker, the warm-up (every worker through each of
// mixedCase's 8 kinds of review at least twice).
const (
	soakMinPerWorker = 10
	warmUpPerWorker  = 16
)

// goroutineSlack is how many more goroutines than after the warm-up may be
// left after the soak: goroutines that end a little after their
// connection (the registry client's idle connections time out on their
// own). A leak of one goroutine per review over the soak is well past it.
const goroutineSlack = 8

// TestServeSoak runs a mixed load at high concurrency against `signgate
// serve` for 60s: cold and cached verifications of both cosign layouts
// (the cache holds fewer verdicts than there are images, so it evicts and
// re-verifies throughout), tag pinning, unsigned, unmatched and privileged
// pods, exempt namespaces, DELETEs and malformed bodies. Every answer must
// be the expected one, and once the load stops and its connections close,
// goroutines and heap must be back where they were after a warm-up. Both
// the warm-up and the soak are counted in reviews answered, so that a slow
// machine runs longer rather than less.
func TestServeSoak(t *testing.T) {
	const workers = 64
	duration := soakDuration(t)
	f := newFixture(t, 24, 8, "cache: {maxEntries: 16, tagTTL: 1s}\n")
	s, stop := startServer(t, f.options(t))
	base := "https://" + s.WebhookAddr().String()
	client, tr := loadClient(workers)
	var stats loadStats

	// Warm-up: every goroutine that lives as long as the server (cache
	// janitors, pollers, the registry's listener) has started, and the heap
	// holds a full cache.
	var samples []sample
	runLoadUntil(t, "the warm-up", client, base, workers, f.mixedCase, &stats, nil, func() error {
		if n := stats.answered.Load(); n < workers*warmUpPerWorker {
			return fmt.Errorf("%d of %d reviews answered", n, workers*warmUpPerWorker)
		}
		return nil
	})
	goroutines0, heap0 := settle(t, tr)
	warm := stats.answered.Load()
	f.reg.ResetRequests()

	// The soak, sampled every 5s.
	start := time.Now()
	runLoadUntil(t, "the soak", client, base, workers, f.mixedCase, &stats, &samples, func() error {
		if n := stats.answered.Load() - warm; n < workers*soakMinPerWorker {
			return fmt.Errorf("%d of %d reviews answered", n, workers*soakMinPerWorker)
		}
		if d := time.Since(start); d < duration {
			return fmt.Errorf("ran %s of %s", d.Round(time.Second), duration)
		}
		return nil
	})
	took := time.Since(start)

	stats.requireNoFailures(t)
	answered := stats.answered.Load() - warm
	goroutines1, heap1 := settleTo(t, tr, goroutines0+goroutineSlack)
	t.Logf("soak: %d workers for %s: %d reviews answered (%.0f/s), %d failed; by case (with warm-up) %v",
		workers, took.Round(time.Millisecond), answered, float64(answered)/took.Seconds(), must(stats.Failed()), stats.byCase)
	t.Logf("soak: goroutines %d after warm-up, %d after the soak (max %.0f during); live heap %.1f MiB after warm-up, %.1f MiB after (max %.1f MiB in use during)",
		goroutines0, goroutines1, maxOf(samples, func(s sample) float64 { return float64(s.goroutines) }),
		mib(heap0), mib(heap1), maxOf(samples, func(s sample) float64 { return mib(s.heapInuse) }))
	// The cache holds 16 verdicts for 32 images: verification stays cold
	// for part of the load the whole time.
	if n := f.reg.Requests(); n == 0 {
		t.Error("no registry requests during the soak: every verdict came from the cache")
	} else {
		t.Logf("soak: %d registry requests (cache evictions re-verify)", n)
	}
	if goroutines1 > goroutines0+goroutineSlack {
		t.Errorf("goroutines grew from %d to %d over the soak", goroutines0, goroutines1)
		buf := make([]byte, 1<<20)
		t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
	// Heap slack: noise after a GC. A leak of 100 bytes per review over
	// the soak is well past it.
	if limit := heap0 + 8<<20; heap1 > limit {
		t.Errorf("live heap grew from %.1f MiB to %.1f MiB over %d reviews (limit %.1f MiB)", mib(heap0), mib(heap1), answered, mib(limit))
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

type sample struct {
	goroutines int
	heapInuse  uint64
}

func takeSample() sample {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return sample{goroutines: runtime.NumGoroutine(), heapInuse: m.HeapInuse}
}

// runLoadUntil runs the load until done returns nil, checked every
// pollInterval, appending a sample every 5s to samples (unless nil). It
// fails t if done does not hold within hangGuard past soakDuration.
func runLoadUntil(t *testing.T, what string, client *http.Client, base string, workers int, pick func(w, i int) reviewCase, stats *loadStats, samples *[]sample, done func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		runLoad(ctx, client, base, workers, pick, stats)
	}()
	defer func() { cancel(); <-stopped }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	guard := time.After(soakDuration(t) + hangGuard)
	for {
		select {
		case <-tick.C:
			if samples != nil {
				*samples = append(*samples, takeSample())
			}
		case <-poll.C:
			if done() == nil {
				return
			}
		case <-guard:
			t.Fatalf("%s did not finish: %v", what, done())
		}
	}
}

// settle closes the load's idle connections, waits for the goroutine count
// to stop falling, and returns it with the live heap after a full GC.
func settle(t *testing.T, tr interface{ CloseIdleConnections() }) (goroutines int, heap uint64) {
	t.Helper()
	tr.CloseIdleConnections()
	// The server's connection goroutines end when they read the close: the
	// count has stopped falling when it is the same over 400ms. Stopping
	// early only makes the baseline, and so the leak check, more lenient.
	counts := []int{runtime.NumGoroutine()}
	for deadline := time.Now().Add(hangGuard); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		counts = append(counts, runtime.NumGoroutine())
		if n := len(counts); n >= 5 && counts[n-1] == counts[n-5] {
			break
		}
	}
	return counts[len(counts)-1], liveHeap()
}

// settleTo closes the load's idle connections and waits for the goroutine
// count to fall to at most want; if it has not within hangGuard, it
// returns the count it is stuck at. It returns the live heap after a full
// GC with it.
func settleTo(t *testing.T, tr interface{ CloseIdleConnections() }, want int) (goroutines int, heap uint64) {
	t.Helper()
	tr.CloseIdleConnections()
	goroutines = runtime.NumGoroutine()
	for deadline := time.Now().Add(hangGuard); goroutines > want && time.Now().Before(deadline); goroutines = runtime.NumGoroutine() {
		time.Sleep(pollInterval)
	}
	return goroutines, liveHeap()
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func maxOf(ss []sample, f func(sample) float64) float64 {
	vs := make([]float64, 0, len(ss))
	for _, s := range ss {
		vs = append(vs, f(s))
	}
	if len(vs) == 0 {
		return 0
	}
	sort.Float64s(vs)
	return vs[len(vs)-1]
}

func must(n int64, _ []string) int64 { return n }
