//go:build e2e

package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
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

// Keyless signing as CI does it: the real cosign CLI gets a certificate
// for a GitHub-Actions-like ID token from a real Fulcio, timestamps the
// signature with a real RFC 3161 TSA, logs it in a real Rekor v2 log and
// attaches the sigstore bundle to the image. cosign v3.1.3 signs with and
// without the log; cosign v2.6.5 without it (its Rekor v2 entries are not
// ones rekor-tiles v2.3.0 accepts). Two ClusterImagePolicies trust the
// release workflow (subject, issuer and the repository extension): one
// under the TrustRoot of the whole deployment (`cosign trusted-root
// create` with Fulcio, TSA and log), for images under logged/, one under
// the TrustRoot without the log, for images under no-log/. Admitted,
// pinned to their digests: the release workflow's signatures with a log
// entry under the first, and without one (v2 and v3) under the second.
// Denied: a fork's workflow's signature, naming the fork's identity and
// the one wanted; a signature without a log entry where the TrustRoot
// lists a log.
func TestKeyless(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	t0 := time.Now()
	sig, err := harness.StartSigstore(ctx, t, env.Bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: fulcio, tsa and rekor up in %s", time.Since(t0).Round(time.Millisecond))
	reg := env.Registry()
	cosign2, cosign3 := env.Cosign, env.Cosign3

	type image struct {
		repo    string
		cosign  *harness.Cosign
		signer  harness.Workflow
		withLog bool
		d       name.Digest
	}
	images := []*image{
		{repo: "logged/app", cosign: cosign3, signer: releaseWorkflow, withLog: true},
		{repo: "logged/fork", cosign: cosign3, signer: forkWorkflow, withLog: true},
		{repo: "logged/app-no-log", cosign: cosign2, signer: releaseWorkflow},
		{repo: "no-log/app-v2", cosign: cosign2, signer: releaseWorkflow},
		{repo: "no-log/app-v3", cosign: cosign3, signer: releaseWorkflow},
	}
	t0 = time.Now()
	for _, im := range images {
		im.d = pushUnsigned(t, reg, repo(t, im.repo))
		if err := sig.SignKeyless(ctx, im.cosign, im.signer, im.d, im.withLog); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("measure: %d images signed keyless with cosign in %s", len(images), time.Since(t0).Round(time.Millisecond))

	policy := func(name, images string, trustedRoot []byte) []*unstructured.Unstructured {
		return releasePolicy(name, reg.Repo(repo(t, images)), sig.IssuerURL,
			map[string]any{"trustedRoot": map[string]any{"inline": string(trustedRoot)}})
	}
	objs := append(policy("e2e-keyless", "logged/**", sig.TrustedRoot),
		policy("e2e-keyless-no-log", "no-log/**", sig.NoLogTrustedRoot)...)
	if err := env.Apply(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, o := range objs {
			gvr := harness.TrustRootGVR
			if o.GetKind() == "ClusterImagePolicy" {
				gvr = harness.ClusterImagePolicyGVR
			}
			env.Dynamic.Resource(gvr).Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		}
	})

	ns := namespace(t, nil)
	tag := func(im *image) string { return reg.Repo(repo(t, im.repo)) + ":v1" }
	logged, fork, loggedNoLog, noLogV2, noLogV3 := images[0], images[1], images[2], images[3], images[4]
	for _, im := range []*image{logged, noLogV2} { // one per policy
		waitAdmitted(ctx, t, "image signed by the release workflow ("+im.repo+")",
			dryRunCreatePod(ctx, ns, harness.RestrictedPod("probe", tag(im))))
	}

	for i, im := range []*image{logged, noLogV2, noLogV3} {
		pod, err := createPod(t, ns, harness.RestrictedPod("release-"+strconv.Itoa(i), tag(im)))
		mustAdmit(t, "image signed keyless by the release workflow ("+im.repo+")", err)
		if err == nil {
			pinnedAs(t, pod.Spec.Containers[0].Image, tag(im), im.d)
		}
	}

	_, err = createPod(t, ns, harness.RestrictedPod("fork", tag(fork)))
	mustDeny(t, "image signed keyless by a fork's workflow", err, fork.d.DigestStr(),
		`certificate subject "`+forkWorkflow.Subject()+`" from issuer "`+sig.IssuerURL+`"`,
		`matches none of: subject "`+releaseWorkflow.Subject()+`"`,
		"for ClusterImagePolicy e2e-keyless (need 1 of: release); sign it as an identity trusted in namespace "+ns)

	_, err = createPod(t, ns, harness.RestrictedPod("no-log", tag(loggedNoLog)))
	mustDeny(t, "image signed keyless without a log entry, under a TrustRoot with a log", err, loggedNoLog.d.DigestStr(),
		"no transparency log entry verified against TrustRoot e2e-keyless for ClusterImagePolicy e2e-keyless")
}

// releasePolicy is a TrustRoot named name with trustRootSpec, and a
// ClusterImagePolicy named name covering images (a glob) whose keyless
// authority "release" trusts releaseWorkflow's certificates from issuer
// under that TrustRoot, its repository pinned by the extension.
func releasePolicy(name, images, issuer string, trustRootSpec map[string]any) []*unstructured.Unstructured {
	tr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "signgate.dev/v1alpha1",
		"kind":       "TrustRoot",
		"metadata":   map[string]any{"name": name},
		"spec":       trustRootSpec,
	}}
	cip := harness.ClusterImagePolicy(name, harness.PolicySpec{Images: []string{images}})
	cip.Object["spec"].(map[string]any)["authorities"] = []any{map[string]any{
		"name": "release",
		"keyless": map[string]any{
			"trustRoot":  name,
			"identities": []any{map[string]any{"issuer": issuer, "subject": releaseWorkflow.Subject()}},
			"extensions": map[string]any{"githubWorkflowRepository": releaseWorkflow.Repository},
		},
	}}
	return []*unstructured.Unstructured{tr, cip}
}
