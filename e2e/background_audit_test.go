//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/e2e/harness"
	"github.com/signgate/signgate/internal/audit"
)

// The background audit of `signgate serve` against the real API server,
// with two replicas:
//
//  1. Exactly one holds the audit Lease; its PolicyReport for the test's
//     namespace shows the pod admitted under key A passing.
//  2. The namespace's policy rotates to key B: within one scan (a policy
//     change starts one) the report shows the pod failing, the message
//     naming key B, and `signgate audit` agrees on what would be denied.
//  3. The holder stops: the other replica takes the Lease within the
//     lease duration and writes the next report (the policy back to key
//     A: passing again).
//
// Both replicas are extra gates registered as no webhook; the Lease lives
// in a namespace of the test's own (the gates' --namespace, exempt from
// evaluation), so the suite's other tests are unaffected. The
// wgpolicyk8s.io CRDs are the chart's (charts/signgate/files).
func TestBackgroundAudit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*hangGuard)
	defer cancel()
	installPolicyReportCRDs(ctx, t)

	reg := env.Registry()
	ns := namespace(t, nil)
	gateNS := namespace(t, nil)
	signed := pushSigned(t, reg, keyA, harness.Classic, repo(t, "app"))
	trust(t, ns, reg, keyA)
	_, err := createPod(t, ns, harness.RestrictedPod("app", signed.String()))
	mustAdmit(t, "pod signed by key A", err)

	lease := uniqueRelease(t, "audit")
	config, err := os.ReadFile(env.Signgate.ConfigPath) // the suite gate's: its registries
	if err != nil {
		t.Fatal(err)
	}
	start := func(id string) *harness.Signgate {
		t.Helper()
		g, err := harness.StartSigngate(ctx, t, t.TempDir(), env.CA, harness.SigngateOptions{
			Bin:        env.Bin.Signgate,
			Kubeconfig: env.APIServer.Kubeconfig,
			Config:     config,
			ExtraArgs: []string{"--namespace=" + gateNS, "--audit-interval=1h", "--audit-lease-name=" + lease,
				"--audit-identity=" + id, "--audit-lease-duration=3s"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	gates := map[string]*harness.Signgate{"replica-a": start("replica-a"), "replica-b": start("replica-b")}

	// 1. One holder; the report shows the pod passing.
	holder := waitLeaseHolder(ctx, t, gateNS, lease, "")
	if _, ok := gates[holder]; !ok {
		t.Fatalf("Lease %s/%s held by %q, want replica-a or replica-b", gateNS, lease, holder)
	}
	for id, g := range gates {
		want := 0.0
		if id == holder {
			want = 1
		}
		waitGauge(ctx, t, g, "signgate_audit_leader", want)
	}
	waitReport(ctx, t, ns, "pod app passing under key A", func(r podReport) bool { return r.result("Pod", "app") == "pass" })

	// 2. Rotation to key B.
	if err := env.ApplyPolicy(ctx, trustPolicy(ns, reg, keyB)); err != nil {
		t.Fatal(err)
	}
	r := waitReport(ctx, t, ns, "pod app failing under key B", func(r podReport) bool { return r.result("Pod", "app") == "fail" })
	if u, err := env.Dynamic.Resource(audit.PolicyReportGVR).Namespace(ns).Get(ctx, audit.ReportName, metav1.GetOptions{}); err == nil {
		b, _ := yaml.Marshal(u.Object["results"])
		t.Logf("PolicyReport %s/%s results after the rotation:\n%s", ns, audit.ReportName, b)
	}
	if msg := r.message("Pod", "app"); !strings.Contains(msg, keyB.Name) {
		t.Errorf("report: pod app fails with %q, which does not name %s", msg, keyB.Name)
	}
	stdout, stderr, code := signgate(t, "audit", "--kubeconfig", env.APIServer.Kubeconfig, "-n", ns, "--config", env.Signgate.ConfigPath, "-o", "json")
	var cli auditReport
	if err := json.Unmarshal([]byte(stdout), &cli); err != nil || code != 1 {
		t.Fatalf("signgate audit: exit %d (%v), stderr %q; want 1 and a report", code, err, stderr)
	}
	var cliDenied, reportFailing []string
	for _, o := range cli.Objects {
		if o.Decision == "denied" {
			cliDenied = append(cliDenied, o.Kind+" "+o.Name)
		}
	}
	for _, res := range r.Results {
		if res.Result == "fail" {
			for _, rr := range res.Resources {
				reportFailing = append(reportFailing, rr.Kind+" "+rr.Name)
			}
		}
	}
	slices.Sort(cliDenied)
	slices.Sort(reportFailing)
	if !slices.Equal(cliDenied, slices.Compact(reportFailing)) {
		t.Errorf("signgate audit denies %v, the PolicyReport fails %v; want the same", cliDenied, reportFailing)
	}

	// 3. Failover.
	gates[holder].Proc.Stop(5 * time.Second)
	next := waitLeaseHolder(ctx, t, gateNS, lease, holder)
	if _, ok := gates[next]; !ok || next == holder {
		t.Fatalf("after %s stopped, Lease held by %q, want the other replica", holder, next)
	}
	waitGauge(ctx, t, gates[next], "signgate_audit_leader", 1)
	if err := env.ApplyPolicy(ctx, trustPolicy(ns, reg, keyA)); err != nil {
		t.Fatal(err)
	}
	waitReport(ctx, t, ns, "pod app passing again under key A, written by "+next, func(r podReport) bool { return r.result("Pod", "app") == "pass" })
}

// installPolicyReportCRDs applies the chart's wgpolicyk8s.io CRDs (as the
// chart installs them when no other tool has) and waits until served.
func installPolicyReportCRDs(ctx context.Context, t *testing.T) {
	t.Helper()
	dir := filepath.Join(env.Root, "charts", "signgate", "files")
	objs, err := harness.ReadManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	var crds []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" && strings.HasSuffix(o.GetName(), ".wgpolicyk8s.io") {
			crds = append(crds, o)
		}
	}
	if len(crds) == 0 {
		t.Fatalf("no wgpolicyk8s.io CustomResourceDefinition in %s", dir)
	}
	if err := env.Apply(ctx, crds...); err != nil {
		t.Fatal(err)
	}
	ri := env.Dynamic.Resource(audit.PolicyReportGVR)
	for {
		_, err := ri.List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("PolicyReports never served: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podReport is the part of a PolicyReport the test reads.
type podReport struct {
	Results []struct {
		Policy    string `json:"policy"`
		Result    string `json:"result"`
		Message   string `json:"message"`
		Resources []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"resources"`
	} `json:"results"`
}

// result is the strongest result for kind/name ("" if none).
func (r podReport) result(kind, name string) string {
	best := ""
	rank := map[string]int{"": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}
	for _, res := range r.Results {
		for _, rr := range res.Resources {
			if rr.Kind == kind && rr.Name == name && rank[res.Result] > rank[best] {
				best = res.Result
			}
		}
	}
	return best
}

func (r podReport) message(kind, name string) string {
	var msgs []string
	for _, res := range r.Results {
		for _, rr := range res.Resources {
			if rr.Kind == kind && rr.Name == name {
				msgs = append(msgs, res.Message)
			}
		}
	}
	return strings.Join(msgs, "\n")
}

// waitReport waits until ns's signgate PolicyReport satisfies ok.
func waitReport(ctx context.Context, t *testing.T, ns, what string, ok func(podReport) bool) podReport {
	t.Helper()
	ri := env.Dynamic.Resource(audit.PolicyReportGVR).Namespace(ns)
	var last string
	for {
		u, err := ri.Get(ctx, audit.ReportName, metav1.GetOptions{})
		if err == nil {
			b, _ := json.Marshal(u.Object)
			last = string(b)
			var r podReport
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if ok(r) {
				return r
			}
		} else if !apierrors.IsNotFound(err) {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("PolicyReport %s/%s: never %s; last: %s", ns, audit.ReportName, what, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitLeaseHolder waits until the Lease has a holder other than not and
// returns it.
func waitLeaseHolder(ctx context.Context, t *testing.T, ns, name, not string) string {
	t.Helper()
	leases := env.Client.CoordinationV1().Leases(ns)
	var last string
	for {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil {
			if h := *l.Spec.HolderIdentity; h != "" && h != not {
				return h
			}
			last = fmt.Sprintf("held by %q", *l.Spec.HolderIdentity)
		} else if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Lease %s/%s: no holder other than %q (%s)", ns, name, not, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitGauge waits until g's metric (no labels) is want.
func waitGauge(ctx context.Context, t *testing.T, g *harness.Signgate, metric string, want float64) {
	t.Helper()
	var got float64
	var err error
	for {
		if got, err = g.Counter(ctx, metric, nil); err == nil && got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s of %s: %v (err %v), want %v", metric, g.URL, got, err, want)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
