package admission

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
)

// runBounded runs every task on at most limit goroutines and returns their
// results in order. When ctx ends first it returns at once: each unfinished
// task's slot holds fail(ctx.Err()). Tasks still running keep going in the
// background until they notice ctx; their results are dropped and no new
// task starts. This is what lets a review answer "timed out, retry" before
// the API server's deadline even if a registry call ignores ctx for a
// while. A panicking task yields fail(error) instead of taking the process
// down. A pod with thousands of images costs limit goroutines, not one per
// image.
func runBounded[T any](ctx context.Context, limit int, tasks []func(context.Context) T, fail func(error) T) []T {
	out := make([]T, len(tasks))
	if len(tasks) == 0 {
		return out
	}
	type done struct {
		i int
		v T
	}
	results := make(chan done, len(tasks)) // buffered: late tasks never block
	var next atomic.Int64
	run := func(i int) (d done) {
		defer func() {
			if p := recover(); p != nil {
				slog.Error("panic in admission task", "panic", p, "stack", string(debug.Stack()))
				d = done{i, fail(fmt.Errorf("internal error: %v", p))}
			}
		}()
		return done{i, tasks[i](ctx)}
	}
	for range min(max(limit, 1), len(tasks)) {
		go func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(tasks) {
					return
				}
				results <- run(i)
			}
		}()
	}
	finished := make([]bool, len(tasks))
	for range tasks {
		select {
		case r := <-results:
			out[r.i], finished[r.i] = r.v, true
		case <-ctx.Done():
			for i := range out {
				if !finished[i] {
					out[i] = fail(ctx.Err())
				}
			}
			return out
		}
	}
	return out
}
