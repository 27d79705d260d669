package admission

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// runBounded runs every task with at most limit at a time and returns their
// results in order. When ctx ends first it returns at once: each unfinished
// task's slot holds fail(ctx.Err()). Tasks still running keep going in the
// background until they notice ctx; their results are dropped. This is what
// lets a review answer "timed out, retry" before the API server's deadline
// even if a registry call ignores ctx for a while. A panicking task yields
// fail(error) instead of taking the process down.
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
	sem := make(chan struct{}, max(limit, 1))
	for i, task := range tasks {
		go func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					slog.Error("panic in admission task", "panic", p, "stack", string(debug.Stack()))
					results <- done{i, fail(fmt.Errorf("internal error: %v", p))}
				}
			}()
			results <- done{i, task(ctx)}
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
