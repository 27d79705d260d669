//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
)

// A ClusterImagePolicy applies to the namespaces its namespaceSelector
// matches, and only those; a namespace's own ImagePolicy adds to it but
// cannot weaken it.
func TestClusterImagePolicyNamespaceSelector(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	reg := env.Registry()
	r := repo(t, "app")
	label := map[string]string{"e2e.signgate.dev/cluster-policy": "selected"}
	// The policy covers only this test's repository, so other tests'
	// namespaces are unaffected by it whatever their labels.
	cip := harness.ClusterImagePolicy("e2e-selector", harness.PolicySpec{
		Images:            []string{reg.Repo(r)},
		Keys:              []harness.KeyPair{keyA},
		NamespaceSelector: label,
	})
	if err := env.ApplyPolicy(ctx, cip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, cip.GetName(), metav1.DeleteOptions{})
	})
	selected, other := namespace(t, label), namespace(t, nil)
	d := pushSigned(t, reg, keyA, harness.Classic, r)

	// The gate sees the cluster policy through an informer: wait until it
	// decides under it (denials before that are "no policy").
	waitAdmitted(ctx, t, "signed image in a namespace the cluster policy selects",
		dryRunCreatePod(ctx, selected, harness.RestrictedPod("selected", d.String())))
	_, err := createPod(t, selected, harness.RestrictedPod("selected", d.String()))
	mustAdmit(t, "signed image in a namespace the cluster policy selects", err)
	_, err = createPod(t, other, harness.RestrictedPod("other", d.String()))
	mustDeny(t, "signed image in a namespace the cluster policy does not select", err, "spec.containers[0].image")

	// The selected namespace adds a requirement (key B) for the same
	// images: both policies must pass, so key A alone is no longer enough.
	strict := namespace(t, label)
	trust(t, strict, reg, keyB)
	_, err = createPod(t, strict, harness.RestrictedPod("and", d.String()))
	mustDeny(t, "image signed by key A where the namespace also requires key B", err, "spec.containers[0].image")
}

// A policy in warn mode admits an unsigned image and tells the client why.
func TestWarnModeWarnsClient(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	reg := env.Registry()
	r := repo(t, "app")
	// Warn mode is a cluster administrator's choice: a ClusterImagePolicy
	// for this test's repository only, selecting this test's namespace (the
	// CRD refuses an ImagePolicy in warn mode; TestImagePolicyOnlyEnforces).
	label := map[string]string{"e2e.signgate.dev/warn-policy": "selected"}
	ns := namespace(t, label)
	p := harness.ClusterImagePolicy("e2e-warn", harness.PolicySpec{
		Images: []string{reg.Repo(r)}, Keys: []harness.KeyPair{keyA}, Mode: "warn", NamespaceSelector: label,
	})
	if err := env.ApplyPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, p.GetName(), metav1.DeleteOptions{})
	})
	cs, warnings, err := env.ClientWithWarnings()
	if err != nil {
		t.Fatal(err)
	}
	d := pushUnsigned(t, reg, r)
	// The gate sees the policy through an informer: wait (with the plain
	// client, whose warnings are not collected) until it decides under it
	// (denials before that are "no policy").
	waitAdmitted(ctx, t, "unsigned image under a warn-mode policy",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("warned", d.String())))
	_, err = cs.CoreV1().Pods(ns).Create(ctx, harness.RestrictedPod("warned", d.String()), metav1.CreateOptions{})
	mustAdmit(t, "unsigned image under a warn-mode policy", err)
	got := warnings.Take()
	t.Logf("warnings: %q", got)
	if !anyContains(got, "spec.containers[0].image") {
		t.Errorf("warnings %q: none names spec.containers[0].image", got)
	}
}

// Editing a policy takes effect without restarting anything: after key A
// is replaced by key B in a namespace's ImagePolicy, an image signed by key
// B, denied before, is admitted. How long the edit takes to be in effect
// is measured and logged ("measure: policy edit in effect after ..."), not
// asserted: on a busy machine it is slower, and only hangGuard ends a wait
// for an edit that never takes effect. Not parallel, so that the figure is
// not inflated by the rest of the suite.
func TestPolicyEditTakesEffect(t *testing.T) {
	ctx := testContext(t)
	ns := namespace(t, nil)
	reg := env.Registry()
	d := pushSigned(t, reg, keyB, harness.Classic, repo(t, "app"))
	trust(t, ns, reg, keyA) // returns once the gate decides under it
	_, err := createPod(t, ns, harness.RestrictedPod("before", d.String()))
	mustDeny(t, "image signed by key B while only key A is trusted", err)

	// The edit, applied directly: trust would wait for it itself.
	if err := env.ApplyPolicy(ctx, trustPolicy(ns, reg, keyB)); err != nil {
		t.Fatal(err)
	}
	edited := time.Now()
	pods := env.Client.CoreV1().Pods(ns)
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	waitFor(ctx, t, "the edit trusting key B to admit "+d.String()+" in "+ns+" (dry runs)", func() (bool, error) {
		_, err := pods.Create(ctx, harness.RestrictedPod("after", d.String()), dry)
		if err != nil && !strings.Contains(err.Error(), deniedBySigngate) {
			t.Fatalf("after the edit: %v", err)
		}
		return err == nil, err
	})
	t.Logf("measure: policy edit in effect after %s", time.Since(edited).Round(time.Millisecond))

	_, err = createPod(t, ns, harness.RestrictedPod("after", d.String()))
	mustAdmit(t, "image signed by key B once the edit trusts key B", err)
}

// The CRD's validation rules refuse, at kubectl apply, an ImagePolicy that
// would let images in rather than add requirements: static pass, or a mode
// other than enforce. The same policies as ClusterImagePolicies are
// accepted.
func TestImagePolicyOnlyEnforces(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	images := []string{"registry.example/never-used/**"}
	tests := []struct {
		name string
		spec harness.PolicySpec
		want string
	}{
		{"static-pass", harness.PolicySpec{Images: images, Static: "pass"}, "static"},
		{"warn", harness.PolicySpec{Images: images, Keys: []harness.KeyPair{keyA}, Mode: "warn"}, "mode enforce"},
		{"audit", harness.PolicySpec{Images: images, Keys: []harness.KeyPair{keyA}, Mode: "audit"}, "mode enforce"},
	}
	for _, tc := range tests {
		err := env.ApplyPolicy(ctx, harness.ImagePolicy(ns, tc.name, tc.spec))
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("apply ImagePolicy %s: %v, want Invalid naming %q", tc.name, err, tc.want)
		}
		// Dry run: accepted as a ClusterImagePolicy, stored nowhere.
		cip := harness.ClusterImagePolicy("e2e-only-enforces-"+tc.name, tc.spec)
		if _, err := env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Create(ctx, cip, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("dry-run create ClusterImagePolicy %s: %v, want accepted", tc.name, err)
		}
	}
}
