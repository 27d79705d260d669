package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/signgate/signgate/admission"
)

var testNow = time.Unix(1700000000, 0)

func testObject(ns, name string) Object {
	return Object{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: name, UID: types.UID("uid-" + name)}
}

// An object without findings has one pass result of policy "signgate",
// about the object.
func TestResultsPass(t *testing.T) {
	got := Results(Evaluation{Object: testObject("team-a", "web")}, testNow)
	if len(got) != 1 {
		t.Fatalf("got %d results, want 1: %v", len(got), got)
	}
	r := got[0]
	if r["result"] != "pass" || r["policy"] != "signgate" || r["source"] != Source {
		t.Errorf("result %v policy %v source %v, want pass, signgate, signgate", r["result"], r["policy"], r["source"])
	}
	want := []any{map[string]any{"apiVersion": "v1", "kind": "Pod", "namespace": "team-a", "name": "web", "uid": "uid-web"}}
	if diff := cmp.Diff(want, r["resources"]); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"seconds": testNow.Unix(), "nanos": int64(0)}, r["timestamp"]); diff != "" {
		t.Errorf("timestamp (-want +got):\n%s", diff)
	}
	if _, ok := r["properties"]; ok {
		t.Errorf("a pass result has properties: %v", r["properties"])
	}
}

// One result per policy named by the findings, in order of first
// appearance; the strongest severity decides result, rule and mode; the
// lines are joined in order; a line mutate and validate both report is
// kept once.
func TestResultsPerPolicy(t *testing.T) {
	corp := "ClusterImagePolicy corp"
	e := Evaluation{Object: testObject("team-a", "web"), Findings: []admission.Finding{
		{Severity: admission.SeverityWarn, Code: admission.CodeNotVerified, Policy: corp, Image: "ghcr.io/a:1", Message: "a warn"},
		{Severity: admission.SeverityWarn, Code: admission.CodePodSecurity, Message: "psa warn"},
		{Severity: admission.SeverityDeny, Code: admission.CodeNotVerified, Policy: corp, Image: "ghcr.io/b:1", Message: "b denied"},
		// validate repeats a line of mutate
		{Severity: admission.SeverityWarn, Code: admission.CodeNotVerified, Policy: corp, Image: "ghcr.io/a:1", Message: "a warn"},
		{Severity: admission.SeverityRetry, Code: admission.CodeRegistryUndecided, Policy: corp, Image: "ghcr.io/a:1", Message: "a undecided"},
		{Severity: admission.SeverityAudit, Code: admission.CodePodSecurity, Message: "psa audit"},
	}}
	got := Results(e, testNow)
	if len(got) != 2 {
		t.Fatalf("got %d results, want 2 (one per policy): %v", len(got), got)
	}
	type summary struct {
		Policy, Rule, Result, Severity, Category, Message string
		Props                                             any
	}
	var sums []summary
	for _, r := range got {
		sums = append(sums, summary{
			Policy: r["policy"].(string), Rule: r["rule"].(string), Result: r["result"].(string),
			Severity: r["severity"].(string), Category: r["category"].(string), Message: r["message"].(string),
			Props: r["properties"],
		})
	}
	want := []summary{
		{
			Policy: "ClusterImagePolicy/corp", Rule: string(admission.CodeNotVerified), Result: "fail", Severity: "high",
			Category: "Image signatures", Message: "a warn\nb denied\na undecided",
			Props: map[string]any{"mode": "enforce", "images": "ghcr.io/a:1, ghcr.io/b:1"},
		},
		{
			Policy: "PodSecurity", Rule: string(admission.CodePodSecurity), Result: "warn", Severity: "medium",
			Category: "Pod Security", Message: "psa warn\npsa audit",
			Props: map[string]any{"mode": "warn"},
		},
	}
	if diff := cmp.Diff(want, sums); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	for _, r := range got {
		res := r["resources"].([]any)[0].(map[string]any)
		if res["name"] != "web" || res["uid"] != "uid-web" || res["kind"] != "Pod" || res["apiVersion"] != "v1" || res["namespace"] != "team-a" {
			t.Errorf("resource %v, want the pod team-a/web", res)
		}
	}
}

// Each severity alone maps to its result: deny fail, retry error, warn and
// audit warn; the mode property is the finding's mode.
func TestResultsSeverity(t *testing.T) {
	for _, tc := range []struct {
		sev          admission.Severity
		result, mode string
	}{
		{admission.SeverityDeny, "fail", "enforce"},
		{admission.SeverityRetry, "error", "enforce"},
		{admission.SeverityWarn, "warn", "warn"},
		{admission.SeverityAudit, "warn", "audit"},
	} {
		got := Results(Evaluation{Object: testObject("ns", "p"), Findings: []admission.Finding{
			{Severity: tc.sev, Code: admission.CodeImageUnpinned, Policy: "ImagePolicy team-a/ci", Message: "m"},
		}}, testNow)
		if len(got) != 1 {
			t.Fatalf("%s: %d results, want 1", tc.sev, len(got))
		}
		r := got[0]
		if r["result"] != tc.result || r["policy"] != "ImagePolicy/team-a/ci" || r["properties"].(map[string]any)["mode"] != tc.mode {
			t.Errorf("%s: result %v policy %v properties %v, want %s, ImagePolicy/team-a/ci, mode %s", tc.sev, r["result"], r["policy"], r["properties"], tc.result, tc.mode)
		}
		if _, ok := r["properties"].(map[string]any)["images"]; ok {
			t.Errorf("%s: images property without images: %v", tc.sev, r["properties"])
		}
	}
}

// An object the gate could not evaluate has one error result, whatever
// findings came with it.
func TestResultsErr(t *testing.T) {
	got := Results(Evaluation{
		Object:   testObject("ns", "p"),
		Findings: []admission.Finding{{Severity: admission.SeverityDeny, Code: admission.CodeNotVerified, Message: "x"}},
		Err:      errors.New("patch broken"),
	}, testNow)
	if len(got) != 1 {
		t.Fatalf("got %d results, want 1: %v", len(got), got)
	}
	if r := got[0]; r["result"] != "error" || r["policy"] != "signgate" || !strings.Contains(r["message"].(string), "patch broken") {
		t.Errorf("result %v policy %v message %q, want error, signgate, the error", r["result"], r["policy"], r["message"])
	}
}

func reportResults(t *testing.T, r *unstructured.Unstructured) []map[string]any {
	t.Helper()
	list, _, err := unstructured.NestedSlice(r.Object, "results")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(list))
	for i, x := range list {
		out[i] = x.(map[string]any)
	}
	return out
}

func deny(msg string) admission.Finding {
	return admission.Finding{Severity: admission.SeverityDeny, Code: admission.CodeNotVerified, Policy: "ClusterImagePolicy corp", Message: msg}
}

// One report per namespace, failures first, with a summary of every
// result.
func TestReportsGroupAndSummary(t *testing.T) {
	evals := []Evaluation{
		{Object: testObject("a", "ok1")},
		{Object: testObject("a", "bad"), Findings: []admission.Finding{deny("denied"), {Severity: admission.SeverityWarn, Code: admission.CodePodSecurity, Message: "psa"}}},
		{Object: testObject("a", "broken"), Err: errors.New("boom")},
		{Object: testObject("b", "ok2")},
	}
	reports := Reports(evals, testNow)
	if len(reports) != 2 || reports["a"] == nil || reports["b"] == nil {
		t.Fatalf("reports for %v, want a and b", keys(reports))
	}
	a := reports["a"]
	if a.GetName() != ReportName || a.GetNamespace() != "a" || a.GetKind() != "PolicyReport" || a.GetAPIVersion() != "wgpolicyk8s.io/v1alpha2" {
		t.Errorf("report %s %s %s/%s", a.GetAPIVersion(), a.GetKind(), a.GetNamespace(), a.GetName())
	}
	if a.GetLabels()[ManagedByLabel] != "signgate" {
		t.Errorf("labels %v, want %s=signgate", a.GetLabels(), ManagedByLabel)
	}
	if len(a.GetAnnotations()) != 0 {
		t.Errorf("annotations %v on an untruncated report", a.GetAnnotations())
	}
	wantSummary := map[string]any{"pass": int64(1), "fail": int64(1), "warn": int64(1), "error": int64(1), "skip": int64(0)}
	if diff := cmp.Diff(wantSummary, a.Object["summary"]); diff != "" {
		t.Errorf("summary of a (-want +got):\n%s", diff)
	}
	var order []string
	for _, r := range reportResults(t, a) {
		order = append(order, r["result"].(string))
	}
	if diff := cmp.Diff([]string{"fail", "error", "warn", "pass"}, order); diff != "" {
		t.Errorf("order of a's results (-want +got):\n%s", diff)
	}
	b := reportResults(t, reports["b"])
	if len(b) != 1 || b[0]["resources"].([]any)[0].(map[string]any)["name"] != "ok2" {
		t.Errorf("results of b: %v, want ok2's pass", b)
	}
	if diff := cmp.Diff(map[string]any{"pass": int64(1), "fail": int64(0), "warn": int64(0), "error": int64(0), "skip": int64(0)}, reports["b"].Object["summary"]); diff != "" {
		t.Errorf("summary of b (-want +got):\n%s", diff)
	}
}

// Past MaxResults a report keeps the failures, says how many it left out
// and still counts every result.
func TestReportsTruncated(t *testing.T) {
	const passes, fails = MaxResults, 5
	var evals []Evaluation
	for i := range passes {
		evals = append(evals, Evaluation{Object: testObject("ns", fmt.Sprintf("ok-%04d", i))})
	}
	for i := range fails {
		evals = append(evals, Evaluation{Object: testObject("ns", fmt.Sprintf("bad-%d", i)), Findings: []admission.Finding{deny("denied")}})
	}
	r := Reports(evals, testNow)["ns"]
	results := reportResults(t, r)
	if len(results) != MaxResults {
		t.Fatalf("%d results, want %d", len(results), MaxResults)
	}
	if got := r.GetAnnotations()[TruncatedAnnotation]; got != fmt.Sprint(fails) {
		t.Errorf("%s = %q, want %d", TruncatedAnnotation, got, fails)
	}
	for i := range fails {
		if results[i]["result"] != "fail" {
			t.Errorf("result %d is %v, want the failures first", i, results[i]["result"])
		}
	}
	// the pass results kept are the first ones, in order
	if name := results[fails]["resources"].([]any)[0].(map[string]any)["name"]; name != "ok-0000" {
		t.Errorf("first pass result is %v, want ok-0000", name)
	}
	wantSummary := map[string]any{"pass": int64(passes), "fail": int64(fails), "warn": int64(0), "error": int64(0), "skip": int64(0)}
	if diff := cmp.Diff(wantSummary, r.Object["summary"]); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// auditListKinds are the list kinds the fake dynamic client needs for
// List's resources and the PolicyReports.
func auditListKinds() map[schema.GroupVersionResource]string {
	m := map[schema.GroupVersionResource]string{PolicyReportGVR: "PolicyReportList"}
	kinds := map[string]string{
		"pods": "PodList", "deployments": "DeploymentList", "statefulsets": "StatefulSetList", "daemonsets": "DaemonSetList",
		"replicasets": "ReplicaSetList", "replicationcontrollers": "ReplicationControllerList", "jobs": "JobList", "cronjobs": "CronJobList",
	}
	for _, gvr := range Resources {
		m[gvr] = kinds[gvr.Resource]
	}
	return m
}

func newFakeDyn(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), auditListKinds(), objs...)
}

func policyReport(ns, name string, labels map[string]string, results ...any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "wgpolicyk8s.io/v1alpha2",
		"kind":       "PolicyReport",
		"results":    results,
	}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

func getReport(t *testing.T, dyn *dynamicfake.FakeDynamicClient, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := dyn.Resource(PolicyReportGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func resultNames(t *testing.T, r *unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	for _, res := range reportResults(t, r) {
		out = append(out, res["resources"].([]any)[0].(map[string]any)["name"].(string))
	}
	return out
}

func TestWrite(t *testing.T) {
	managed := map[string]string{ManagedByLabel: "signgate"}
	oldResult := map[string]any{"policy": "old", "result": "fail", "resources": []any{map[string]any{"name": "old"}}}
	dyn := newFakeDyn(
		policyReport("existing", ReportName, managed, oldResult),
		policyReport("gone", ReportName, managed, oldResult),
		// another name in a namespace without a report now: not signgate's
		policyReport("gone", "other", managed, oldResult),
		// signgate's name without the label: another tool's
		policyReport("foreign", ReportName, map[string]string{ManagedByLabel: "kyverno"}, oldResult),
		policyReport("foreign", "polr-1", nil, oldResult),
		// signgate's label on another name where signgate's report is new
		policyReport("new", "other", managed, oldResult),
	)
	reports := Reports([]Evaluation{
		{Object: testObject("existing", "e1")},
		{Object: testObject("new", "n1")},
		{Object: testObject("new", "n2"), Findings: []admission.Finding{deny("no")}},
	}, testNow)
	if err := Write(context.Background(), dyn, reports); err != nil {
		t.Fatal(err)
	}
	if r := getReport(t, dyn, "new", ReportName); r == nil {
		t.Error("no report created in namespace new")
	} else {
		if diff := cmp.Diff([]string{"n2", "n1"}, resultNames(t, r)); diff != "" {
			t.Errorf("results of new (-want +got):\n%s", diff)
		}
		if r.GetLabels()[ManagedByLabel] != "signgate" {
			t.Errorf("created report's labels %v", r.GetLabels())
		}
	}
	if r := getReport(t, dyn, "existing", ReportName); r == nil {
		t.Error("the report of namespace existing is gone")
	} else if diff := cmp.Diff([]string{"e1"}, resultNames(t, r)); diff != "" {
		t.Errorf("results of existing, replaced not appended (-want +got):\n%s", diff)
	}
	if getReport(t, dyn, "gone", ReportName) != nil {
		t.Error("the stale signgate report of namespace gone is still there")
	}
	for _, nn := range [][2]string{{"gone", "other"}, {"new", "other"}, {"foreign", ReportName}, {"foreign", "polr-1"}} {
		if r := getReport(t, dyn, nn[0], nn[1]); r == nil {
			t.Errorf("PolicyReport %s/%s (not signgate's) was deleted", nn[0], nn[1])
		} else if diff := cmp.Diff([]string{"old"}, resultNames(t, r)); diff != "" {
			t.Errorf("PolicyReport %s/%s (not signgate's) was changed (-want +got):\n%s", nn[0], nn[1], diff)
		}
	}

	// A second write with the same reports changes nothing: update, not
	// create again.
	if err := Write(context.Background(), dyn, reports); err != nil {
		t.Fatalf("second write: %v", err)
	}
	if r := getReport(t, dyn, "new", ReportName); r == nil || len(resultNames(t, r)) != 2 {
		t.Errorf("after a second write, the report of new is %v", r)
	}
}

// A failed create in one namespace leaves the others written and is in
// the error.
func TestWriteCreateErrorContinues(t *testing.T) {
	dyn := newFakeDyn()
	dyn.PrependReactor("create", "policyreports", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "b" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "wgpolicyk8s.io", Resource: "policyreports"}, ReportName, errors.New("quota"))
		}
		return false, nil, nil
	})
	reports := Reports([]Evaluation{{Object: testObject("a", "p")}, {Object: testObject("b", "p")}, {Object: testObject("c", "p")}}, testNow)
	err := Write(context.Background(), dyn, reports)
	if err == nil || !strings.Contains(err.Error(), "namespace b") {
		t.Errorf("error %v, want one naming namespace b", err)
	}
	for _, ns := range []string{"a", "c"} {
		if getReport(t, dyn, ns, ReportName) == nil {
			t.Errorf("no report in namespace %s after a failure in b", ns)
		}
	}
	if getReport(t, dyn, "b", ReportName) != nil {
		t.Error("a report in namespace b, whose create failed")
	}
}

// A create refused because the namespace is gone is no error.
func TestWriteNamespaceGone(t *testing.T) {
	dyn := newFakeDyn()
	dyn.PrependReactor("create", "policyreports", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "b" {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "b")
		}
		return false, nil, nil
	})
	reports := Reports([]Evaluation{{Object: testObject("a", "p")}, {Object: testObject("b", "p")}}, testNow)
	if err := Write(context.Background(), dyn, reports); err != nil {
		t.Errorf("Write: %v, want no error for a namespace deleted meanwhile", err)
	}
	if getReport(t, dyn, "a", ReportName) == nil {
		t.Error("no report in namespace a")
	}
}

// A report that already says the same, but for the timestamps, is not
// rewritten (its timestamps keep saying since when); a changed one is.
func TestWriteUnchangedNotRewritten(t *testing.T) {
	dyn := newFakeDyn()
	evals := []Evaluation{{Object: testObject("a", "p1")}, {Object: testObject("a", "p2"), Findings: []admission.Finding{deny("no")}}}
	if err := Write(context.Background(), dyn, Reports(evals, testNow)); err != nil {
		t.Fatal(err)
	}
	updates := func() int {
		n := 0
		for _, a := range dyn.Actions() {
			if a.GetVerb() == "update" || a.GetVerb() == "create" || a.GetVerb() == "patch" {
				n++
			}
		}
		return n
	}
	before := updates()
	later := testNow.Add(time.Hour)
	if err := Write(context.Background(), dyn, Reports(evals, later)); err != nil {
		t.Fatal(err)
	}
	if n := updates() - before; n != 0 {
		t.Errorf("%d writes of an unchanged report, want 0", n)
	}
	r := getReport(t, dyn, "a", ReportName)
	if secs := reportResults(t, r)[0]["timestamp"].(map[string]any)["seconds"]; secs != testNow.Unix() {
		t.Errorf("timestamp %v after an unchanged scan, want the first scan's %d", secs, testNow.Unix())
	}

	evals[1].Findings = nil
	if err := Write(context.Background(), dyn, Reports(evals, later)); err != nil {
		t.Fatal(err)
	}
	if n := updates() - before; n != 1 {
		t.Errorf("%d writes of a changed report, want 1", n)
	}
	r = getReport(t, dyn, "a", ReportName)
	if diff := cmp.Diff(map[string]any{"pass": int64(2), "fail": int64(0), "warn": int64(0), "error": int64(0), "skip": int64(0)}, r.Object["summary"]); diff != "" {
		t.Errorf("summary after the change (-want +got):\n%s", diff)
	}
}
