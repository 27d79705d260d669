package verifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// flightGroup shares one run of fn among concurrent callers of the same
// key. The run uses a context detached from any single caller, with its
// own deadline, and is cancelled only when every waiting caller has gone.
//
// A panic in fn is recovered in the run itself: singleflight would
// re-panic it on a goroutine of its own, where nothing can recover it,
// and the process would exit. It becomes errInternal for every waiter
// (an undecided answer, never cached), is logged once with its stack and
// counted with Observer.Panic(op), and reset runs.
type flightGroup struct {
	op  string   // "verify" | "resolve": names the work in logs and metrics
	obs Observer // nil records nothing
	// reset runs after a recovered panic (nil: nothing). The Verifier
	// renews its registry session: a panic inside go-containerregistry's
	// per-repository setup (a sync.Once) would leave it half-built for
	// the life of the Puller.
	reset func()
	g     singleflight.Group
	mu    sync.Mutex
	calls map[string]*flightCall
}

// errInternal is the cause of an answer whose work panicked: a bug,
// usually in a library, set off by what a registry returned.
var errInternal = errors.New("an internal error occurred while reading the registry's data; please report it")

type flightCall struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiters int
}

// do runs fn once per key at a time and returns its result, or ctx's error
// if the caller gives up first.
func (f *flightGroup) do(ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (any, error)) (any, error) {
	c := f.join(ctx, key, timeout)
	ch := f.g.DoChan(key, func() (val any, err error) {
		defer f.finish(key, c)
		defer func() {
			if p := recover(); p != nil {
				val, err = nil, f.recovered(key, p)
			}
		}()
		return fn(c.ctx)
	})
	select {
	case r := <-ch:
		f.leave(key, c)
		return r.Val, r.Err
	case <-ctx.Done():
		f.leave(key, c)
		return nil, ctx.Err()
	}
}

// recovered logs and counts a panic of the work for key and returns the
// error every waiter gets.
func (f *flightGroup) recovered(key string, p any) error {
	slog.Error("panic in "+f.op+" (recovered)", "op", f.op, "key", key, "panic", p, "stack", string(debug.Stack()))
	if f.obs != nil {
		f.obs.Panic(f.op)
	}
	if f.reset != nil {
		f.reset()
	}
	return fmt.Errorf("%w: panic: %v", errInternal, p)
}

func (f *flightGroup) join(ctx context.Context, key string, timeout time.Duration) *flightCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = make(map[string]*flightCall)
	}
	c := f.calls[key]
	if c == nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		c = &flightCall{ctx: wctx, cancel: cancel}
		f.calls[key] = c
	}
	c.waiters++
	return c
}

// finish runs when the shared work returns: later callers start afresh.
func (f *flightGroup) finish(key string, c *flightCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
}

// leave cancels the shared work when its last waiter has gone, and makes
// sure a later caller does not join the cancelled run.
func (f *flightGroup) leave(key string, c *flightCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.waiters--
	if c.waiters > 0 {
		return
	}
	c.cancel()
	if f.calls[key] == c {
		delete(f.calls, key)
		f.g.Forget(key)
	}
}
