package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/signgate/signgate/admission"
)

// fakeGate answers with canned findings (or an error) per object name and
// counts the calls per namespace/kind/name.
type fakeGate struct {
	findings map[string][]admission.Finding
	errs     map[string]error

	mu    sync.Mutex
	calls map[string]int
	total atomic.Int64
}

func (g *fakeGate) DryRun(_ context.Context, req *admissionv1.AdmissionRequest, timeout time.Duration) (admission.DryRun, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]int{}
	}
	g.calls[req.Namespace+"/"+req.Kind.Kind+"/"+req.Name]++
	g.mu.Unlock()
	g.total.Add(1)
	if timeout <= 0 {
		return admission.DryRun{}, errors.New("no timeout")
	}
	if req.Operation != admissionv1.Create || req.DryRun == nil || !*req.DryRun || len(req.Object.Raw) == 0 {
		return admission.DryRun{}, errors.New("not a dry-run CREATE with the object")
	}
	if err := g.errs[req.Name]; err != nil {
		return admission.DryRun{}, err
	}
	return admission.DryRun{Findings: g.findings[req.Name]}, nil
}

func (g *fakeGate) callCounts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.calls {
		out[k] = v
	}
	return out
}

func pod(ns, name, phase string, owner ...map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"spec":       map[string]any{"containers": []any{map[string]any{"name": "c", "image": "ghcr.io/x/" + name + ":1"}}},
		"status":     map[string]any{"phase": phase},
	}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetUID(typesUID(name))
	if len(owner) > 0 {
		u.Object["metadata"].(map[string]any)["ownerReferences"] = []any{owner[0]}
	}
	return u
}

func workload(kind, ns, name string, owner ...map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       kind,
		"spec": map[string]any{"template": map[string]any{
			"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "ghcr.io/x/" + name + ":1"}}},
		}},
	}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetUID(typesUID(name))
	if len(owner) > 0 {
		u.Object["metadata"].(map[string]any)["ownerReferences"] = []any{owner[0]}
	}
	return u
}

func controller(apiVersion, kind, name string) map[string]any {
	return map[string]any{"apiVersion": apiVersion, "kind": kind, "name": name, "uid": "uid-" + name, "controller": true}
}

// scanFixture is a cluster of two namespaces: running pods (one of a
// ReplicaSet), a finished pod, a Deployment and its ReplicaSet.
func scanFixture() (*fakeGate, []runtime.Object) {
	gate := &fakeGate{
		findings: map[string][]admission.Finding{
			"denied": {deny("ghcr.io/x/denied:1 is not signed")},
			"web":    {{Severity: admission.SeverityWarn, Code: admission.CodeHardening, Check: "runtimeClass", Message: "no runtime class"}},
		},
		errs: map[string]error{"broken": errors.New("cannot apply patch")},
	}
	objs := []runtime.Object{
		pod("a", "web-abc-1", "Running", controller("apps/v1", "ReplicaSet", "web-abc")),
		pod("a", "denied", "Running"),
		pod("a", "done", "Succeeded"),
		pod("a", "failed", "Failed"),
		pod("b", "broken", "Running"),
		pod("b", "ok", "Pending"),
		workload("Deployment", "a", "web"),
		workload("ReplicaSet", "a", "web-abc", controller("apps/v1", "Deployment", "web")),
	}
	return gate, objs
}

type resultKey struct{ Name, Policy, Result string }

func resultKeys(t *testing.T, r *unstructured.Unstructured) []resultKey {
	t.Helper()
	var out []resultKey
	for _, res := range reportResults(t, r) {
		out = append(out, resultKey{
			Name:   res["resources"].([]any)[0].(map[string]any)["name"].(string),
			Policy: res["policy"].(string),
			Result: res["result"].(string),
		})
	}
	return out
}

func TestScan(t *testing.T) {
	gate, objs := scanFixture()
	dyn := newFakeDyn(objs...)
	s := &Scanner{Gate: gate, Dyn: dyn, Now: func() time.Time { return testNow }}
	if err := s.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantCalls := map[string]int{
		"a/Pod/web-abc-1": 1, "a/Pod/denied": 1, "a/Deployment/web": 1,
		"b/Pod/broken": 1, "b/Pod/ok": 1,
	}
	if diff := cmp.Diff(wantCalls, gate.callCounts()); diff != "" {
		t.Errorf("objects evaluated (-want +got):\n%s", diff)
	}

	a := getReport(t, dyn, "a", ReportName)
	if a == nil {
		t.Fatal("no report in namespace a")
	}
	// failures first; then List's order (namespace, kind, name)
	wantA := []resultKey{
		{"denied", "ClusterImagePolicy/corp", "fail"},
		{"web", "hardening/runtimeClass", "warn"},
		{"web-abc-1", "signgate", "pass"},
	}
	if diff := cmp.Diff(wantA, resultKeys(t, a)); diff != "" {
		t.Errorf("results of a (-want +got):\n%s", diff)
	}
	for _, res := range reportResults(t, a) {
		if res["timestamp"].(map[string]any)["seconds"] != testNow.Unix() {
			t.Errorf("timestamp %v, want Scanner.Now's", res["timestamp"])
		}
	}
	web := reportResults(t, a)[1]["resources"].([]any)[0].(map[string]any)
	if web["apiVersion"] != "apps/v1" || web["kind"] != "Deployment" || web["uid"] != "uid-web" {
		t.Errorf("resource of web: %v, want the Deployment", web)
	}

	b := getReport(t, dyn, "b", ReportName)
	if b == nil {
		t.Fatal("no report in namespace b")
	}
	wantB := []resultKey{{"broken", "signgate", "error"}, {"ok", "signgate", "pass"}}
	if diff := cmp.Diff(wantB, resultKeys(t, b)); diff != "" {
		t.Errorf("results of b (-want +got):\n%s", diff)
	}
	if msg := reportResults(t, b)[0]["message"].(string); !strings.Contains(msg, "cannot apply patch") {
		t.Errorf("message of broken's error result %q, want the gate's error", msg)
	}
}

// Scan records a successful scan in the metrics.
func TestScanMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	gate, objs := scanFixture()
	s := &Scanner{Gate: gate, Dyn: newFakeDyn(objs...), Metrics: m}
	if err := s.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := gathered(t, reg)
	want := map[string]float64{
		`signgate_audit_scans_total{result="success"}`: 1,
		`signgate_audit_results{result="pass"}`:        2,
		`signgate_audit_results{result="fail"}`:        1,
		`signgate_audit_results{result="warn"}`:        1,
		`signgate_audit_results{result="error"}`:       1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got[`signgate_audit_scans_total{result="error"}`]; ok {
		t.Errorf("an error scan was counted: %v", got)
	}
	if got["signgate_audit_last_success_timestamp_seconds"] <= 0 {
		t.Errorf("last success timestamp %v", got["signgate_audit_last_success_timestamp_seconds"])
	}
}

// gathered is reg's samples by name{label="value",…}.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// A nil *Metrics records nothing, without panicking.
func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.scan(true, time.Now(), map[string]int{"pass": 1})
	m.scan(false, time.Now(), nil)
	m.leading(true)
	m.leading(false)
}

func TestMetricsLeading(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.leading(true)
	if got := gathered(t, reg)["signgate_audit_leader"]; got != 1 {
		t.Errorf("signgate_audit_leader = %v while leading, want 1", got)
	}
	m.leading(false)
	if got := gathered(t, reg)["signgate_audit_leader"]; got != 0 {
		t.Errorf("signgate_audit_leader = %v after leading, want 0", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("NewMetrics registered twice on one registry without an error")
	}
}

// A failed list is a failed scan: counted, and nothing written.
func TestScanListError(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	gate, objs := scanFixture()
	dyn := newFakeDyn(objs...)
	dyn.PrependReactor("list", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcd on fire")
	})
	s := &Scanner{Gate: gate, Dyn: dyn, Metrics: m}
	var le *ListError
	if err := s.Scan(context.Background()); !errors.As(err, &le) {
		t.Fatalf("Scan: %v, want a *ListError", err)
	}
	if gate.total.Load() != 0 {
		t.Errorf("%d objects evaluated after a failed list", gate.total.Load())
	}
	if getReport(t, dyn, "a", ReportName) != nil {
		t.Error("a report written after a failed list")
	}
	if got := gathered(t, reg)[`signgate_audit_scans_total{result="error"}`]; got != 1 {
		t.Errorf(`signgate_audit_scans_total{result="error"} = %v, want 1`, got)
	}
}

// fakePolicies counts the calls of Ready and Generation.
type fakePolicies struct {
	ready                atomic.Bool
	gen                  atomic.Uint64
	readyCalls, genCalls atomic.Int64
}

func (p *fakePolicies) Ready() bool {
	p.readyCalls.Add(1)
	return p.ready.Load()
}

func (p *fakePolicies) Generation() uint64 {
	p.genCalls.Add(1)
	return p.gen.Load()
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Run waits for the policies, scans at once, and again after a policy
// change without waiting for the interval.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	gate := &fakeGate{}
	dyn := newFakeDyn(pod("a", "p", "Running"))
	policies := &fakePolicies{}
	s := &Scanner{Gate: gate, Dyn: dyn, Policies: policies, Interval: time.Hour, MinGap: 10 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(runCtx)
	}()
	defer func() {
		stop()
		<-done
	}()

	// Not ready: polled again (a tick went by), and no scan.
	waitFor(ctx, t, "a second Ready poll", func() bool { return policies.readyCalls.Load() >= 2 })
	if n := gate.total.Load(); n != 0 {
		t.Fatalf("%d evaluations before the policies are ready", n)
	}

	policies.ready.Store(true)
	waitFor(ctx, t, "the first scan", func() bool { return gate.total.Load() >= 1 })
	waitFor(ctx, t, "the first report", func() bool { return getReport(t, dyn, "a", ReportName) != nil })

	// No change: no rescan while the loop goes round twice.
	g := policies.genCalls.Load()
	waitFor(ctx, t, "two more rounds", func() bool { return policies.genCalls.Load() >= g+2 })
	if n := gate.total.Load(); n != 1 {
		t.Fatalf("%d evaluations without a policy change within the interval, want 1", n)
	}

	policies.gen.Add(1)
	waitFor(ctx, t, "a rescan after the policy change", func() bool { return gate.total.Load() >= 2 })
	stop()
	<-done
	if n := gate.total.Load(); n != 2 {
		t.Errorf("%d evaluations, want 2 (one per scan)", n)
	}
}

func typesUID(name string) types.UID { return types.UID("uid-" + name) }
