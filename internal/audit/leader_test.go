package audit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// Two replicas on one Lease: one leads; when it stops, it releases the
// Lease and the other takes over.
func TestElection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	kube := fake.NewClientset()

	var (
		mu      sync.Mutex
		leading = map[string]bool{}
		led     []string
	)
	lead := func(id string) func(context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			leading[id] = true
			led = append(led, id)
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			leading[id] = false
			mu.Unlock()
		}
	}
	snapshot := func() (map[string]bool, []string) {
		mu.Lock()
		defer mu.Unlock()
		l := map[string]bool{}
		for k, v := range leading {
			l[k] = v
		}
		return l, append([]string(nil), led...)
	}

	regs := map[string]*prometheus.Registry{}
	ctxs := map[string]context.CancelFunc{}
	dones := map[string]chan struct{}{}
	for _, id := range []string{"r1", "r2"} {
		reg := prometheus.NewRegistry()
		m, err := NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		regs[id] = reg
		e := Election{Kube: kube, Namespace: "signgate", Name: "signgate-audit", Identity: id, LeaseDuration: time.Second, Metrics: m}
		rctx, stop := context.WithCancel(ctx)
		ctxs[id] = stop
		done := make(chan struct{})
		dones[id] = done
		go func() {
			defer close(done)
			e.Run(rctx, lead(id))
		}()
	}
	defer func() {
		for id, stop := range ctxs {
			stop()
			<-dones[id]
		}
	}()

	waitFor(ctx, t, "a leader", func() bool { _, l := snapshot(); return len(l) >= 1 })
	first := func() string { _, l := snapshot(); return l[0] }()
	other := map[string]string{"r1": "r2", "r2": "r1"}[first]
	// Hold for a few renewals (RetryPeriod is 250ms): still one leader.
	deadline := time.Now().Add(1500 * time.Millisecond)
	waitFor(ctx, t, "1.5s of leadership", func() bool {
		cur, l := snapshot()
		if len(l) != 1 || cur[other] {
			t.Fatalf("led %v, leading %v: want %s alone", l, cur, first)
		}
		return time.Now().After(deadline)
	})
	if got := gathered(t, regs[first])["signgate_audit_leader"]; got != 1 {
		t.Errorf("signgate_audit_leader of %s = %v, want 1", first, got)
	}
	if got := gathered(t, regs[other])["signgate_audit_leader"]; got != 0 {
		t.Errorf("signgate_audit_leader of %s = %v, want 0", other, got)
	}

	ctxs[first]()
	select {
	case <-dones[first]:
	case <-ctx.Done():
		t.Fatalf("Run of %s did not return after its context ended", first)
	}
	// Released on the way out: not held by first until it expires.
	lease, err := kube.CoordinationV1().Leases("signgate").Get(ctx, "signgate-audit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h == first {
		t.Errorf("Lease still held by %s after its Run returned: not released", first)
	}
	waitFor(ctx, t, other+" leading", func() bool { cur, _ := snapshot(); return cur[other] })
	if cur, l := snapshot(); cur[first] || len(l) != 2 || l[1] != other {
		t.Errorf("led %v, leading %v: want %s then %s", l, cur, first, other)
	}
	if got := gathered(t, regs[first])["signgate_audit_leader"]; got != 0 {
		t.Errorf("signgate_audit_leader of %s = %v after it stopped, want 0", first, got)
	}
	lease, err = kube.CoordinationV1().Leases("signgate").Get(ctx, "signgate-audit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h != other {
		t.Errorf("Lease holder %v, want %s", h, other)
	}
}
