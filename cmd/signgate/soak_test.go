package main

import (
	"context"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"
)

// soakDuration is how long TestServeSoak runs: 60s, SIGNGATE_SOAK_DURATION
// to change it, 5s with -short.
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

// TestServeSoak runs a mixed load at high concurrency against `signgate
// serve` for 60s: cold and cached verifications of both cosign layouts
// (the cache holds fewer verdicts than there are images, so it evicts and
// re-verifies throughout), tag pinning, unsigned, unmatched and privileged
// pods, exempt namespaces, DELETEs and malformed bodies. Every answer must
// be the expected one, and once the load stops and its connections close,
// goroutines and heap must be back where they were after a warm-up.
func TestServeSoak(t *testing.T) {
	const workers = 64
	duration := soakDuration(t)
	f := newFixture(t, 24, 8, "cache: {maxEntries: 16, tagTTL: 1s}\n")
	s, stop := startServer(t, f.options(t))
	base := "https://" + s.webhookLn.Addr().String()
	client, tr := loadClient(workers)
	var stats loadStats

	// Warm-up: every goroutine that lives as long as the server (cache
	// janitors, pollers, the registry's listener) has started, and the heap
	// holds a full cache.
	load := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		runLoad(ctx, client, base, workers, f.mixedCase, &stats)
	}
	load(3 * time.Second)
	goroutines0, heap0 := settle(t, tr)
	warm := stats.answered.Load()
	f.reg.ResetRequests()

	// The soak, sampled every 5s.
	var samples []sample
	ctx, cancel := context.WithTimeout(t.Context(), duration)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runLoad(ctx, client, base, workers, f.mixedCase, &stats)
	}()
	tick := time.NewTicker(5 * time.Second)
sampling:
	for {
		select {
		case <-tick.C:
			samples = append(samples, takeSample())
		case <-done:
			break sampling
		}
	}
	tick.Stop()
	cancel()

	stats.requireNoFailures(t)
	answered := stats.answered.Load() - warm
	goroutines1, heap1 := settle(t, tr)
	t.Logf("soak: %d workers for %s: %d reviews answered (%.0f/s), %d failed; by case (with warm-up) %v",
		workers, duration, answered, float64(answered)/duration.Seconds(), must(stats.Failed()), stats.byCase)
	t.Logf("soak: goroutines %d after warm-up, %d after the soak (max %.0f during); live heap %.1f MiB after warm-up, %.1f MiB after (max %.1f MiB in use during)",
		goroutines0, goroutines1, maxOf(samples, func(s sample) float64 { return float64(s.goroutines) }),
		mib(heap0), mib(heap1), maxOf(samples, func(s sample) float64 { return mib(s.heapInuse) }))
	if answered < workers*10 {
		t.Errorf("only %d reviews answered in %s: the load did not run", answered, duration)
	}
	// The cache holds 16 verdicts for 32 images: verification stays cold
	// for part of the load the whole time.
	if n := f.reg.Requests(); n == 0 {
		t.Error("no registry requests during the soak: every verdict came from the cache")
	} else {
		t.Logf("soak: %d registry requests (cache evictions re-verify)", n)
	}
	// Slack: goroutines that end a little after their connection (the
	// registry client's idle connections time out on their own) and heap
	// noise after a GC. A leak of one goroutine or 100 bytes per review
	// over the soak is well past both.
	if goroutines1 > goroutines0+8 {
		t.Errorf("goroutines grew from %d to %d over the soak", goroutines0, goroutines1)
		buf := make([]byte, 1<<20)
		t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
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

// settle closes the load's idle connections, waits for the goroutine count
// to stop falling, and returns it with the live heap after a full GC.
func settle(t *testing.T, tr interface{ CloseIdleConnections() }) (goroutines int, heap uint64) {
	t.Helper()
	tr.CloseIdleConnections()
	// The server's connection goroutines end when they read the close.
	counts := []int{runtime.NumGoroutine()}
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		counts = append(counts, runtime.NumGoroutine())
		if n := len(counts); n >= 5 && counts[n-1] == counts[n-5] {
			break
		}
	}
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return counts[len(counts)-1], m.HeapAlloc
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
