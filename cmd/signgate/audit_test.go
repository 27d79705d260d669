package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/signgate/signgate/internal/audit"
)

// fakeCluster is a dynamic client holding objs, listing every audited
// resource and namespaces.
func fakeCluster(objs ...*unstructured.Unstructured) *dynamicfake.FakeDynamicClient {
	kinds := map[schema.GroupVersionResource]string{{Version: "v1", Resource: "namespaces"}: "NamespaceList"}
	for _, gvr := range audit.Resources {
		kinds[gvr] = auditListKind(gvr)
	}
	ro := make([]runtime.Object, len(objs))
	for i, o := range objs {
		ro[i] = o
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, ro...)
}

func auditListKind(gvr schema.GroupVersionResource) string {
	kind := map[string]string{
		"pods": "Pod", "deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet",
		"replicasets": "ReplicaSet", "replicationcontrollers": "ReplicationController", "jobs": "Job", "cronjobs": "CronJob",
	}[gvr.Resource]
	return kind + "List"
}

// restrictedSpec is a pod spec Pod Security restricted admits, running image.
func restrictedSpec(image string) map[string]any {
	sc := map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}}
	return map[string]any{
		"securityContext": map[string]any{"runAsNonRoot": true, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"containers":      []any{map[string]any{"name": "app", "image": image, "securityContext": sc}},
	}
}

func auditPod(ns, name, image, phase string, owner *metav1.OwnerReference) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     restrictedSpec(image),
		"status":   map[string]any{"phase": phase},
	}}
	if owner != nil {
		u.SetOwnerReferences([]metav1.OwnerReference{*owner})
	}
	return u
}

func auditWorkload(apiVersion, kind, ns, name, image string, owner *metav1.OwnerReference) *unstructured.Unstructured {
	tpl := map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": name}}, "spec": restrictedSpec(image)}
	spec := map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": name}}, "template": tpl}
	if kind == "CronJob" {
		tpl["spec"].(map[string]any)["restartPolicy"] = "Never"
		spec = map[string]any{"schedule": "@daily", "jobTemplate": map[string]any{"spec": map[string]any{"template": tpl}}}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
	if owner != nil {
		u.SetOwnerReferences([]metav1.OwnerReference{*owner})
	}
	return u
}

func controller(apiVersion, kind, name string) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true)}
}

func auditNamespace(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name, "labels": map[string]any{
			"kubernetes.io/metadata.name":        name,
			"pod-security.kubernetes.io/enforce": "restricted",
		}},
	}}
}

// audit runs `signgate audit` against cluster with the test registry and
// the policy dir.
func (e *checkEnv) audit(t *testing.T, cluster *dynamicfake.FakeDynamicClient, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o auditFlags
	fs := pflag.NewFlagSet("audit", pflag.ContinueOnError)
	o.addFlags(fs)
	args = append([]string{"--policy-dir", e.policies, "--insecure-registry", e.reg.Host, "--allow-host", e.reg.Host}, args...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	opts, err := o.options()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code = runAudit(context.Background(), opts, cluster, newCheckGate, &out, &errOut, false)
	return code, e.replacer.Replace(out.String()), e.replacer.Replace(errOut.String())
}

// Running pods and top-level workload templates are audited with the
// proposed policies and the cluster's namespace labels; finished pods and
// templates a Deployment or CronJob writes are not.
func TestAuditProposedPolicies(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	web := e.digestsOf["team-a/web"].String()
	unsigned := e.digestsOf["team-a/unsigned"].String()
	cluster := fakeCluster(
		auditNamespace("team-a"),
		auditPod("team-a", "web-1", web, "Running", controller("apps/v1", "ReplicaSet", "web-7d9c")),
		auditPod("team-a", "legacy", unsigned, "Running", nil),
		auditPod("team-a", "old-job-x", unsigned, "Succeeded", nil),
		auditWorkload("apps/v1", "Deployment", "team-a", "web", web, nil),
		auditWorkload("apps/v1", "ReplicaSet", "team-a", "web-7d9c", web, controller("apps/v1", "Deployment", "web")),
		auditWorkload("apps/v1", "StatefulSet", "team-a", "db", unsigned, nil),
		auditWorkload("batch/v1", "CronJob", "team-a", "report", unsigned, nil),
		auditWorkload("batch/v1", "Job", "team-a", "report-1", unsigned, controller("batch/v1", "CronJob", "report")),
		// A controller audit knows nothing of: its ReplicaSet is audited.
		auditWorkload("apps/v1", "ReplicaSet", "team-a", "rollout-abc", unsigned, controller("argoproj.io/v1alpha1", "Rollout", "rollout")),
	)
	code, stdout, stderr := e.audit(t, cluster, "-o", "json")
	if code != exitDenied || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want %d and nothing on stderr", code, stderr, exitDenied)
	}
	var r report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("output is not a report: %v\n%s", err, stdout)
	}
	if r.Kind != "AuditReport" {
		t.Errorf("kind %q, want AuditReport", r.Kind)
	}
	got := map[string]decision{}
	var order []string
	for _, o := range r.Objects {
		key := o.Kind + " " + o.Namespace + "/" + o.Name
		got[key] = o.Decision
		order = append(order, key)
		if o.Decision == denied && !strings.Contains(strings.Join(o.Messages, "\n"), "team-a-ci") {
			t.Errorf("%s denied with %q: the message does not name the authority team-a-ci", key, o.Messages)
		}
	}
	want := map[string]decision{
		"CronJob team-a/report":         denied,
		"Deployment team-a/web":         admitted,
		"Pod team-a/legacy":             denied,
		"Pod team-a/web-1":              admitted,
		"ReplicaSet team-a/rollout-abc": denied,
		"StatefulSet team-a/db":         denied,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audited objects (-want +got):\n%s", diff)
	}
	if !slices.IsSorted(order) {
		t.Errorf("objects not sorted by namespace, kind and name: %v", order)
	}
	for _, o := range r.Objects {
		if o.Name == "web-1" && o.Source.File != "cluster, controlled by ReplicaSet web-7d9c" {
			t.Errorf("pod web-1 source %q, want its controller named", o.Source.File)
		}
	}

	// -n limits the namespaces; nothing denied in one without objects.
	code, stdout, _ = e.audit(t, cluster, "-n", "team-b")
	if code != exitOK || !strings.Contains(stdout, "0 checked") {
		t.Errorf("-n team-b: exit %d, output %q; want 0 and nothing checked", code, stdout)
	}
}

// Many pods running the same image cost the registry what one pod costs:
// one verdict per image and authority set, shared by concurrent lookups.
func TestAuditVerifiesEachImageOnce(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	web := e.digestsOf["team-a/web"].String()
	requests := func(pods int) int64 {
		objs := []*unstructured.Unstructured{auditNamespace("team-a")}
		for i := range pods {
			objs = append(objs, auditPod("team-a", fmt.Sprintf("web-%d", i), web, "Running", nil))
		}
		e.reg.ResetRequests()
		if code, stdout, stderr := e.audit(t, fakeCluster(objs...), "--concurrency", "8"); code != exitOK {
			t.Fatalf("%d pods: exit %d\n%s%s", pods, code, stdout, stderr)
		}
		return e.reg.Requests()
	}
	one, many := requests(1), requests(40)
	if one == 0 || many != one {
		t.Errorf("registry requests: %d for one pod, %d for 40 pods of the same image; want the same, non-zero", one, many)
	}
}

// A list audit may not read is an error naming the permission, never a
// shorter report.
func TestAuditListForbidden(t *testing.T) {
	t.Parallel()
	e := newCheckEnv(t)
	cluster := fakeCluster(auditNamespace("team-a"))
	cluster.PrependReactor("list", "cronjobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, newForbidden("cronjobs")
	})
	code, stdout, stderr := e.audit(t, cluster)
	want := "signgate audit: list cronjobs.batch in every namespace: forbidden: audit needs list on cronjobs.batch (or limit it with -n to namespaces you may list)\n"
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d, nothing, %q", code, stdout, stderr, exitUsage, want)
	}
}

func TestAuditFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "yaml"}, `-o "yaml": want text or json`},
		{[]string{"--chunk-size", "0"}, "--chunk-size must be positive"},
		{[]string{"--concurrency", "0"}, "--concurrency must be positive"},
		{[]string{"--trusted-root", "r=f"}, "--trusted-root needs --policy-dir"},
		{[]string{"-n", "Team_A"}, `--namespace "Team_A"`},
	} {
		var code int
		var stderr bytes.Buffer
		code = run(context.Background(), append([]string{"audit"}, tc.args...), &bytes.Buffer{}, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("audit %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}

func newForbidden(resource string) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: resource}, "", fmt.Errorf("user cannot list"))
}
