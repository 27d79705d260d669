package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/signgate/signgate/admission"
)

// Policies is what a scan needs of the policy source
// (policy.ClusterSource): whether it compiled once, and a count of the
// compilations a change caused.
type Policies interface {
	Ready() bool
	Generation() uint64
}

// Gate is what a scan needs of admission.Gate.
type Gate interface {
	DryRun(ctx context.Context, req *admissionv1.AdmissionRequest, timeout time.Duration) (admission.DryRun, error)
}

// Scanner re-evaluates the cluster's running pods and workload templates
// with the admission engine and writes the results as PolicyReports: at
// start, every Interval, and after every change of the compiled policies
// (a policy, a trust root, a namespace's labels), at most once per
// MinGap.
type Scanner struct {
	Gate Gate
	// Dyn lists (without Source) and writes the PolicyReports.
	Dyn dynamic.Interface
	// Source gives each scan its objects. Default: Run watches them
	// (WatchSource: listed once, then watched, while Run runs); a Scan
	// without Run lists them (ListSource).
	Source   ObjectSource
	Policies Policies
	Interval time.Duration
	// MinGap is the least time between two scans started by policy
	// changes (default 5s): a burst of edits is one rescan.
	MinGap time.Duration
	// Concurrency is how many objects are evaluated at once (default 4);
	// evaluations of the same image share the verifier's cache and
	// in-flight lookups.
	Concurrency int
	// Chunk is the page size of the lists (default 500).
	Chunk int64
	// Timeout bounds each webhook's decision of one object (default 10s),
	// as timeoutSeconds bounds a review.
	Timeout time.Duration
	Log     *slog.Logger
	Metrics *Metrics // nil: none
	Now     func() time.Time
}

// Run scans until ctx ends. It waits for the policies' first compilation.
func (s *Scanner) Run(ctx context.Context) {
	s.defaults()
	src := s.Source
	if src == nil {
		w, err := NewWatchSource(s.Dyn)
		if err != nil {
			s.Log.Error("background audit: no informers; listing every scan instead", "err", err)
			src = ListSource{Dyn: s.Dyn, Chunk: s.Chunk}
		} else {
			w.Start(ctx) // stops with ctx: watched only while Run runs
			src = w
		}
	}
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for !s.Policies.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
	var (
		last      = s.Policies.Generation()
		lastStart time.Time
		due       = time.Now() // the first scan at once
	)
	for {
		gen := s.Policies.Generation()
		now := time.Now()
		if !now.Before(due) || (gen != last && now.Sub(lastStart) >= s.MinGap) {
			last, lastStart = gen, now
			if err := s.scan(ctx, src); err != nil && ctx.Err() == nil {
				s.Log.Error("background audit failed; next try at the next interval or policy change", "err", err)
			}
			due = time.Now().Add(s.Interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// Scan lists (Source, else ListSource), evaluates and writes once.
func (s *Scanner) Scan(ctx context.Context) error {
	s.defaults()
	src := s.Source
	if src == nil {
		src = ListSource{Dyn: s.Dyn, Chunk: s.Chunk}
	}
	return s.scan(ctx, src)
}

func (s *Scanner) scan(ctx context.Context, src ObjectSource) error {
	start := time.Now()
	objs, err := src.Objects(ctx)
	if err != nil {
		s.Metrics.scan(false, start, nil)
		return err
	}
	evals := s.evaluate(ctx, objs)
	if err := ctx.Err(); err != nil {
		return err
	}
	reports := Reports(evals, s.Now())
	if err := Write(ctx, s.Dyn, reports); err != nil {
		s.Metrics.scan(false, start, nil)
		return err
	}
	counts := map[string]int{}
	for _, r := range reports {
		for _, res := range []string{resultPass, resultFail, resultWarn, resultError} {
			n, _, _ := unstructuredInt(r.Object, "summary", res)
			counts[res] += int(n)
		}
	}
	s.Metrics.scan(true, start, counts)
	s.Log.Info("background audit", "objects", len(objs), "namespaces", len(reports),
		"fail", counts[resultFail], "warn", counts[resultWarn], "error", counts[resultError], "duration_seconds", time.Since(start).Round(time.Millisecond).Seconds())
	return nil
}

// evaluate runs objs through the gate, s.Concurrency at a time, in order.
func (s *Scanner) evaluate(ctx context.Context, objs []Object) []Evaluation {
	out := make([]Evaluation, len(objs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s.Concurrency, len(objs)) {
		wg.Go(func() {
			for i := range next {
				out[i] = s.evaluateOne(ctx, objs[i])
			}
		})
	}
feed:
	for i := range objs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return out
}

func (s *Scanner) evaluateOne(ctx context.Context, o Object) Evaluation {
	e := Evaluation{Object: o}
	k, ok := admission.KindOf(o.APIVersion, o.Kind)
	if !ok {
		e.Err = fmt.Errorf("%s %s has no pod spec signgate knows", o.APIVersion, o.Kind)
		return e
	}
	req := admission.DryRunCreate(k, o.Namespace, o.Name, o.Raw, types.UID("audit-"+string(o.UID)), "signgate-audit")
	run, err := s.Gate.DryRun(ctx, req, s.Timeout)
	if err != nil {
		e.Err = err
		return e
	}
	e.Findings = run.Findings
	return e
}

func (s *Scanner) defaults() {
	if s.MinGap <= 0 {
		s.MinGap = 5 * time.Second
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 4
	}
	if s.Chunk <= 0 {
		s.Chunk = 500
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Interval <= 0 {
		s.Interval = time.Hour
	}
}

func unstructuredInt(obj map[string]any, fields ...string) (int64, bool, error) {
	cur := any(obj)
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false, nil
		}
		cur = m[f]
	}
	n, ok := cur.(int64)
	return n, ok, nil
}
