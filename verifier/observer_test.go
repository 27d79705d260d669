package verifier_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signgate/signgate/verifier"
)

// countingObserver counts events as "kind/label" strings.
type countingObserver struct {
	mu     sync.Mutex
	events map[string]int
}

func (o *countingObserver) add(e string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events[e]++
}
func (o *countingObserver) CacheRequest(cache, result string) { o.add("cache/" + cache + "/" + result) }
func (o *countingObserver) RegistryRequest(op string, code int) {
	o.add(fmt.Sprintf("registry/%s/%d", op, code))
}
func (o *countingObserver) Verification(result string) { o.add("verification/" + result) }
func (o *countingObserver) Panic(op string)            { o.add("panic/" + op) }

func TestObserver(t *testing.T) {
	t.Parallel()
	reg, alice, _ := signedApp(t)
	obs := &countingObserver{events: map[string]int{}}
	v := newVerifier(t, reg, verifier.Options{Observer: obs})
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	set := newSet(t, 0, authority("alice", alice))
	for range 2 {
		got, err := v.Resolve(t.Context(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), got, set); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{
		"cache/tag/miss":        1,
		"cache/tag/hit":         1,
		"cache/verdict/miss":    1,
		"cache/verdict/hit":     1,
		"registry/ping/0":       1, // insecure registry: the HTTPS attempt fails
		"registry/ping/200":     1,
		"registry/manifest/200": 2, // HEAD tag, GET .sig
		"registry/blob/200":     1, // the payload
		"verification/verified": 1,
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if diff := cmp.Diff(want, obs.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// latencyObserver is a countingObserver that also takes latencies
// (verifier.RegistryLatencyObserver), as "latency/host/operation".
type latencyObserver struct {
	countingObserver
	negative bool
}

func (o *latencyObserver) RegistryRequestDuration(host, op string, d time.Duration) {
	o.add("latency/" + host + "/" + op)
	if d < 0 {
		o.mu.Lock()
		o.negative = true
		o.mu.Unlock()
	}
}

// TestRegistryLatencyObserver: an Observer that is a
// RegistryLatencyObserver gets one latency, with the host the request went
// to, per registry request; a plain Observer keeps working (TestObserver).
func TestRegistryLatencyObserver(t *testing.T) {
	t.Parallel()
	reg, alice, _ := signedApp(t)
	obs := &latencyObserver{countingObserver: countingObserver{events: map[string]int{}}}
	v := newVerifier(t, reg, verifier.Options{Observer: obs})
	ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Resolve(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), got, newSet(t, 0, authority("alice", alice))); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	requests, latencies := map[string]int{}, map[string]int{}
	for e, n := range obs.events {
		kind, rest, _ := strings.Cut(e, "/")
		switch kind {
		case "registry":
			op, _, _ := strings.Cut(rest, "/")
			requests[op] += n
		case "latency":
			host, op, _ := strings.Cut(rest, "/")
			if host != reg.Host {
				t.Errorf("latency for host %q, want %q", host, reg.Host)
			}
			latencies[op] += n
		}
	}
	if len(requests) == 0 {
		t.Fatal("no registry requests observed")
	}
	if diff := cmp.Diff(requests, latencies); diff != "" {
		t.Errorf("latencies per operation differ from requests (-requests +latencies):\n%s", diff)
	}
	if obs.negative {
		t.Error("a negative latency")
	}
}
