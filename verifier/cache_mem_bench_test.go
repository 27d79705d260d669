package verifier

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
)

// BenchmarkCacheMemory fills a verdict cache with 100,000 verified
// verdicts, keyed the way Verify keys them (canonical repository and
// digest plus an authority-set fingerprint), and reports the live heap
// they hold. Target (issue 9): under 64 MiB for 100,000 verdicts.
func BenchmarkCacheMemory(b *testing.B) {
	const n = 100_000
	fp := mustSet(b, Authority{Name: "ci-key", Key: registrytest.NewSigner(b).Public}).Fingerprint()
	digests := make([]name.Digest, n)
	for i := range digests {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		d, err := name.NewDigest(fmt.Sprintf("registry.example.com/team-%02d/service-%05d@sha256:%x", i%50, i, sum))
		if err != nil {
			b.Fatal(err)
		}
		digests[i] = d
	}
	names := []string{"ci-key"}
	var perVerdict float64
	for b.Loop() {
		before := liveHeap()
		c := newVerdictCache(Options{CacheSize: n, TTL: DefaultTTL, FailureTTL: DefaultFailureTTL})
		for _, d := range digests {
			// Verify stores the slice tally.result builds for each verification.
			c.put(verdictKey(d, fp), append([]string(nil), names...), nil)
		}
		after := liveHeap()
		if c.verified.Len() != n {
			b.Fatalf("cache holds %d verdicts, want %d", c.verified.Len(), n)
		}
		perVerdict = float64(after-before) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perVerdict, "B/verdict")
	b.ReportMetric(perVerdict*n/(1<<20), "MiB/100k")
}

func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
