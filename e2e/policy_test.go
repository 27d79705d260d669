//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

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
	ns := namespace(t, nil)
	reg := env.Registry()
	p := harness.ImagePolicy(ns, "warn", harness.PolicySpec{Images: []string{reg.Host + "/**"}, Keys: []harness.KeyPair{keyA}, Mode: "warn"})
	if err := env.ApplyPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	cs, warnings, err := env.ClientWithWarnings()
	if err != nil {
		t.Fatal(err)
	}
	d := pushUnsigned(t, reg, repo(t, "app"))
	_, err = cs.CoreV1().Pods(ns).Create(ctx, harness.RestrictedPod("warned", d.String()), metav1.CreateOptions{})
	mustAdmit(t, "unsigned image under a warn-mode policy", err)
	got := warnings.Take()
	t.Logf("warnings: %q", got)
	if !anyContains(got, "spec.containers[0].image") {
		t.Errorf("warnings %q: none names spec.containers[0].image", got)
	}
}

// Editing a policy takes effect within 2 seconds, without restarting
// anything. Not parallel: it measures time.
func TestPolicyEditTakesEffectWithin2s(t *testing.T) {
	ns := namespace(t, nil)
	reg := env.Registry()
	d := pushSigned(t, reg, keyB, harness.Classic, repo(t, "app"))
	trust(t, ns, reg, keyA)
	_, err := createPod(t, ns, harness.RestrictedPod("before", d.String()))
	mustDeny(t, "image signed by key B while only key A is trusted", err)

	trust(t, ns, reg, keyB) // the edit
	edited := time.Now()
	for i := 0; ; i++ {
		_, err = createPod(t, ns, harness.RestrictedPod("after-"+itoa(i), d.String()))
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), deniedBySigngate) {
			t.Fatalf("after the edit: %v", err)
		}
		if time.Since(edited) > 2*time.Second {
			t.Fatalf("policy edit not in effect 2s later: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("policy edit in effect after %s", time.Since(edited).Round(time.Millisecond))
}
