//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
)

// Signatures and attestations made with a key by either cosign teams run
// today, v2.6.5 and v3.1.3, in each layout they write (v3 writes bundles
// by default; its classic layout is deprecated but still written with
// --new-bundle-format=false): admitted under one ClusterImagePolicy
// whose key authority requires SLSA provenance from acme's builder, and
// pinned to their digests. An image v3 signed but did not attest is
// denied for the missing provenance, so the attestations are what
// admitted the others.
func TestCosignVersions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	reg := env.Registry()
	ns := namespace(t, nil)
	provenance := filepath.Join(t.TempDir(), "provenance.json")
	b, err := json.Marshal(slsaProvenance(trustedBuilder))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(provenance, b, 0o644); err != nil {
		t.Fatal(err)
	}

	signers := []struct {
		name   string
		cosign *harness.Cosign
		layout harness.Layout
	}{
		{"v2-classic", env.Cosign, harness.Classic},
		{"v2-bundle", env.Cosign, harness.Bundle},
		{"v3-bundle", env.Cosign3, harness.Bundle},
		{"v3-classic", env.Cosign3, harness.Classic},
	}
	images := make([]name.Digest, len(signers))
	for i, s := range signers {
		d, err := reg.PushSigned(ctx, s.cosign, keyA, s.layout, repo(t, s.name), "v1")
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if err := s.cosign.Attest(ctx, keyA, d, s.layout, "slsaprovenance1", provenance); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		images[i] = d
	}
	unattested, err := reg.PushSigned(ctx, env.Cosign3, keyA, harness.Bundle, repo(t, "v3-unattested"), "v1")
	if err != nil {
		t.Fatal(err)
	}

	cip := harness.ClusterImagePolicy("e2e-cosign-versions", harness.PolicySpec{
		Images: []string{reg.Repo(repo(t, "**"))},
		Keys:   []harness.KeyPair{keyA},
	})
	requireAttestations(t, cip, attestationRequirements[:1]) // provenance
	if err := env.ApplyPolicy(ctx, cip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, cip.GetName(), metav1.DeleteOptions{})
	})
	tag := func(n string) string { return reg.Repo(repo(t, n)) + ":v1" }
	waitAdmitted(ctx, t, "image signed and attested by cosign v2",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("probe", tag(signers[0].name))))

	for i, s := range signers {
		pod, err := createPod(t, ns, harness.RestrictedPod(s.name, tag(s.name)))
		mustAdmit(t, "signed and attested by cosign "+s.name, err)
		if err == nil {
			pinnedAs(t, pod.Spec.Containers[0].Image, tag(s.name), images[i])
		}
	}
	_, err = createPod(t, ns, harness.RestrictedPod("unattested", tag("v3-unattested")))
	mustDeny(t, "signed by cosign v3, not attested", err, unattested.DigestStr(),
		"attestation provenance (https://slsa.dev/provenance/v1) of authority key-a: no attestation of this type signed by the authority")
}
