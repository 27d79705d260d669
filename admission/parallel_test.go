package admission

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunBounded(t *testing.T) {
	var running, peak atomic.Int64
	tasks := make([]func(context.Context) int, 1000)
	for i := range tasks {
		tasks[i] = func(context.Context) int {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			runtime.Gosched()
			running.Add(-1)
			return i
		}
	}
	tasks[7] = func(context.Context) int { panic("boom") }
	out := runBounded(t.Context(), 4, tasks, func(error) int { return -1 })
	for i, v := range out {
		want := i
		if i == 7 {
			want = -1
		}
		if v != want {
			t.Fatalf("out[%d] = %d, want %d", i, v, want)
		}
	}
	if p := peak.Load(); p > 4 {
		t.Errorf("%d tasks ran at once, limit 4", p)
	}
}

// TestRunBoundedDeadline: when ctx ends, runBounded answers at once even
// though every task ignores ctx and would never return: here they block
// until the test ends, so waiting for them could only hang.
func TestRunBoundedDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	block := make(chan struct{})
	defer close(block)
	stuck := func(context.Context) error { <-block; return nil } // ignores ctx
	answered := make(chan []error, 1)
	go func() {
		answered <- runBounded(ctx, 2, []func(context.Context) error{stuck, stuck, stuck}, func(err error) error { return err })
	}()
	var out []error
	select {
	case out = <-answered:
	case <-time.After(hangGuard):
		t.Fatalf("no answer %s after the deadline: runBounded waits for tasks that ignore ctx", hangGuard)
	}
	for i, err := range out {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("out[%d] = %v, want the deadline", i, err)
		}
	}
}
