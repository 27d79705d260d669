package main

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// The tests of this package wait for events, never for time: a fixed sleep
// is either too short on a loaded machine or wasted on an idle one.

// hangGuard bounds every wait for an event. It only keeps a broken test
// from hanging; how long an event took is reported, never asserted.
const hangGuard = 2 * time.Minute

// pollInterval is how often waitFor checks its condition.
const pollInterval = 20 * time.Millisecond

// waitFor polls cond until it returns nil and fails t with what and cond's
// last error if that has not happened within hangGuard. cond runs on the
// test goroutine, so it may call t.Fatal.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", hangGuard, what, err)
		}
		time.Sleep(pollInterval)
	}
}

// await waits on ch for up to hangGuard, failing t with what otherwise.
func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("waited %s for %s", hangGuard, what)
	}
	var zero T
	return zero
}

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caseCount returns how many reviews named name the load has had answered.
func caseCount(s *loadStats, name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byCase[name]
}

// errNotYet is what a waitFor condition returns while there is nothing
// more to say than that it does not hold yet.
var errNotYet = errors.New("not yet")
