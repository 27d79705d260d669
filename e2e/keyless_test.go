//go:build e2e

package e2e

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/signgate/signgate/e2e/harness"
)

// The CI workflows of TestKeyless: the release workflow the policy trusts,
// and the same file in a fork.
var (
	releaseWorkflow = harness.Workflow{Repository: "acme/app", Path: ".github/workflows/release.yml", Ref: "refs/heads/main"}
	forkWorkflow    = harness.Workflow{Repository: "mallory/app", Path: ".github/workflows/release.yml", Ref: "refs/heads/main"}
)

// Keyless signing as CI does it: the real cosign CLI (v3) gets a
// certificate for a GitHub-Actions-like ID token from a real Fulcio, logs
// the signature in a real Rekor v2 log, timestamps it with a real RFC 3161
// TSA and attaches the sigstore bundle to the image. A ClusterImagePolicy
// whose keyless authority trusts the release workflow (subject, issuer and
// the repository extension) under a TrustRoot holding the
// trusted_root.json `cosign trusted-root create` made admits the image
// signed by that workflow, pinned to its digest, and denies the one
// signed by a fork's workflow, naming the fork's identity and the one
// wanted.
func TestKeyless(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	t0 := time.Now()
	sig, err := harness.StartSigstore(ctx, t, env.Bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: fulcio, tsa and rekor up in %s", time.Since(t0).Round(time.Millisecond))
	cosign := harness.NewCosign(env.Bin.Cosign3, t.TempDir())
	reg := env.Registry()

	release := pushUnsigned(t, reg, repo(t, "app"))
	fork := pushUnsigned(t, reg, repo(t, "fork"))
	t0 = time.Now()
	if err := sig.SignKeyless(ctx, cosign, releaseWorkflow, release); err != nil {
		t.Fatal(err)
	}
	if err := sig.SignKeyless(ctx, cosign, forkWorkflow, fork); err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: 2 images signed keyless with cosign v3 in %s", time.Since(t0).Round(time.Millisecond))

	trustRoot := "e2e-keyless"
	tr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "signgate.dev/v1alpha1",
		"kind":       "TrustRoot",
		"metadata":   map[string]any{"name": trustRoot},
		"spec":       map[string]any{"trustedRoot": map[string]any{"inline": string(sig.TrustedRoot)}},
	}}
	cip := harness.ClusterImagePolicy("e2e-keyless", harness.PolicySpec{Images: []string{reg.Repo(repo(t, "**"))}})
	cip.Object["spec"].(map[string]any)["authorities"] = []any{map[string]any{
		"name": "release",
		"keyless": map[string]any{
			"trustRoot":  trustRoot,
			"identities": []any{map[string]any{"issuer": sig.IssuerURL, "subject": releaseWorkflow.Subject()}},
			"extensions": map[string]any{"githubWorkflowRepository": releaseWorkflow.Repository},
		},
	}}
	if err := env.Apply(ctx, tr, cip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, cip.GetName(), metav1.DeleteOptions{})
		env.Dynamic.Resource(harness.TrustRootGVR).Delete(ctx, trustRoot, metav1.DeleteOptions{})
	})

	ns := namespace(t, nil)
	releaseTag := reg.Repo(repo(t, "app")) + ":v1"
	waitAdmitted(ctx, t, "image signed by the release workflow",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("release", releaseTag)))

	pod, err := createPod(t, ns, harness.RestrictedPod("release", releaseTag))
	mustAdmit(t, "image signed keyless by the release workflow", err)
	pinnedAs(t, pod.Spec.Containers[0].Image, releaseTag, release)

	_, err = createPod(t, ns, harness.RestrictedPod("fork", reg.Repo(repo(t, "fork"))+":v1"))
	mustDeny(t, "image signed keyless by a fork's workflow", err, fork.DigestStr(),
		`certificate subject "`+forkWorkflow.Subject()+`" from issuer "`+sig.IssuerURL+`"`,
		`matches none of: subject "`+releaseWorkflow.Subject()+`"`,
		"for ClusterImagePolicy e2e-keyless (need 1 of: release); sign it as an identity trusted in namespace "+ns)
}
