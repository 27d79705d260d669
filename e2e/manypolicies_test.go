//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/signgate/signgate/e2e/harness"
)

// manyPoliciesLimit is how long a ClusterImagePolicy may take to be
// enforced, and a newly started gate to be ready, while 100 namespaced
// policies, many of them pointing at missing Secrets, are compiled with
// it. Generous on purpose: it catches the
// regression of issue 32 (failed Secret reads re-read one by one through
// the client's 5 QPS limit: ~50 s), not a slow machine.
const manyPoliciesLimit = 90 * time.Second

// Many namespaced ImagePolicies, half of them broken (secretRefs to
// Secrets that do not exist), do not hold up a ClusterImagePolicy created
// after them: the gate reads the missing Secrets in parallel and caches
// the failures. How long the cluster policy takes to be enforced is
// measured and logged ("measure: ..."); the test fails only past
// manyPoliciesLimit. Not parallel, so that the figure is the gate's.
func TestManyNamespacePoliciesDoNotDelayClusterPolicy(t *testing.T) {
	ctx := testContext(t)
	reg := env.Registry()
	const namespaces, perNamespace, missingRefs = 5, 20, 8
	ipRes := env.Dynamic.Resource(harness.ImagePolicyGVR)

	var last *unstructured.Unstructured
	for n := range namespaces {
		ns := namespace(t, nil)
		for i := range perNamespace {
			p := harness.ImagePolicy(ns, fmt.Sprintf("p%d", i), harness.PolicySpec{
				Images: []string{"registry.example/never-used/**"}, Keys: []harness.KeyPair{keyA},
			})
			if i%2 == 0 { // broken: its keys are in Secrets that do not exist
				auths := make([]any, 0, missingRefs)
				for j := range missingRefs {
					auths = append(auths, map[string]any{"name": fmt.Sprintf("k%d", j), "key": map[string]any{
						"secretRef": map[string]any{"name": fmt.Sprintf("missing-%d-%d", i, j), "key": "cosign.pub"},
					}})
				}
				if err := unstructured.SetNestedSlice(p.Object, auths, "spec", "authorities"); err != nil {
					t.Fatal(err)
				}
			}
			if err := env.ApplyPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
				defer cancel()
				ipRes.Namespace(ns).Delete(ctx, p.GetName(), metav1.DeleteOptions{})
			})
			if n == namespaces-1 && i == 0 {
				last = p
			}
		}
	}
	// The gate has compiled the broken policies once it reports the last
	// namespace's first one invalid.
	waitFor(ctx, t, "the gate to report ImagePolicy "+last.GetNamespace()+"/"+last.GetName()+" invalid", func() (bool, error) {
		u, err := ipRes.Namespace(last.GetNamespace()).Get(ctx, last.GetName(), getOpts)
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
				return m["status"] == "False", fmt.Errorf("Ready=%v: %v", m["status"], m["message"])
			}
		}
		return false, fmt.Errorf("no Ready condition")
	})

	// A gate started now, with the broken policies already present, is
	// ready soon: its first compilation reads the missing Secrets in
	// parallel, once (issue 32: 4 policies of 32 missing secretRefs kept
	// /readyz failing 24-25 s).
	start := time.Now()
	if _, err := harness.StartSigngate(ctx, t, t.TempDir(), env.CA, harness.SigngateOptions{
		Bin: env.Bin.Signgate, Kubeconfig: env.APIServer.Kubeconfig, Config: harness.GateConfig(reg.Host),
	}); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	t.Logf("measure: a gate started with %d ImagePolicies (%d broken, %d missing secretRefs) present passed /readyz after %s",
		namespaces*perNamespace, namespaces*perNamespace/2, namespaces*perNamespace/2*missingRefs, ready.Round(time.Millisecond))
	if ready > manyPoliciesLimit {
		t.Errorf("a gate started with the broken policies present took %s to be ready, want under %s", ready.Round(time.Millisecond), manyPoliciesLimit)
	}

	// The cluster policy, for this test's repository in this test's
	// namespace only.
	label := map[string]string{"e2e.signgate.dev/many-policies": "selected"}
	ns := namespace(t, label)
	r := repo(t, "app")
	d := pushSigned(t, reg, keyA, harness.Classic, r)
	cip := harness.ClusterImagePolicy("e2e-many-policies", harness.PolicySpec{
		Images: []string{reg.Repo(r)}, Keys: []harness.KeyPair{keyA}, NamespaceSelector: label,
	})
	if err := env.ApplyPolicy(ctx, cip); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, cip.GetName(), metav1.DeleteOptions{})
	})
	waitAdmitted(ctx, t, "signed image under the ClusterImagePolicy created after 100 ImagePolicies",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("many", d.String())))
	took := time.Since(created)
	t.Logf("measure: ClusterImagePolicy enforced %s after creation, with %d ImagePolicies (%d broken) in the cluster",
		took.Round(time.Millisecond), namespaces*perNamespace, namespaces*perNamespace/2)
	if took > manyPoliciesLimit {
		t.Errorf("ClusterImagePolicy took %s to be enforced, want under %s", took.Round(time.Millisecond), manyPoliciesLimit)
	}
}
