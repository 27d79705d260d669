//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/signgate/signgate/e2e/harness"
)

// A signed, restricted-compliant pod referring to its image by tag is
// admitted and stored pinned to the digest that was verified, for both
// signature layouts cosign writes.
func TestSignedPodAdmittedAndPinned(t *testing.T) {
	t.Parallel()
	layouts := []harness.Layout{harness.Classic}
	if env.Cosign.SupportsBundle(testContext(t)) {
		layouts = append(layouts, harness.Bundle)
	} else {
		t.Logf("%s has no --new-bundle-format: bundle layout not covered", env.Cosign.Bin)
	}
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	for _, layout := range layouts {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			r := repo(t, "app")
			d := pushSigned(t, reg, keyA, layout, r)
			tagRef := reg.Repo(r) + ":v1"
			got, err := createPod(t, ns, harness.RestrictedPod("signed-"+string(layout), tagRef))
			mustAdmit(t, "signed pod", err)
			pinnedAs(t, got.Spec.Containers[0].Image, tagRef, d)

			// Stored, not just answered: read it back.
			stored, err := env.Client.CoreV1().Pods(ns).Get(testContext(t), got.Name, getOpts)
			if err != nil {
				t.Fatal(err)
			}
			pinnedAs(t, stored.Spec.Containers[0].Image, tagRef, d)
		})
	}
}

// An image nobody signed is denied, naming the container's field path.
func TestUnsignedPodDenied(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	// One signed and one unsigned container: the denial must name the
	// unsigned one, and only that one.
	unsigned := pushUnsigned(t, reg, repo(t, "app"))
	signed := pushSigned(t, reg, keyA, harness.Classic, repo(t, "signed"))
	_, err := createPod(t, ns, harness.RestrictedPod("unsigned", signed.String(), unsigned.String()))
	msg := mustDeny(t, "pod with an unsigned second container", err,
		"spec.containers[1].image", unsigned.Context().RepositoryStr(), "sign it with a key trusted in namespace "+ns)
	if strings.Contains(msg, "spec.containers[0].image") {
		t.Errorf("denial names the signed container too: %s", msg)
	}
}

// Trust is per namespace: a key trusted in team B does not make an image
// pass in team A, and each namespace's ImagePolicy applies there only.
func TestTrustIsPerNamespace(t *testing.T) {
	t.Parallel()
	reg := env.Registry()
	nsA, nsB := namespace(t, nil), namespace(t, nil)
	trust(t, nsA, reg, keyA)
	trust(t, nsB, reg, keyB)
	nsNone := namespace(t, nil) // no policy at all: unmatched images are denied

	signedB := pushSigned(t, reg, keyB, harness.Classic, repo(t, "b"))
	signedA := pushSigned(t, reg, keyA, harness.Classic, repo(t, "a"))

	_, err := createPod(t, nsA, harness.RestrictedPod("b-in-a", signedB.String()))
	mustDeny(t, "image signed by key B in namespace A", err, "spec.containers[0].image")
	_, err = createPod(t, nsB, harness.RestrictedPod("b-in-b", signedB.String()))
	mustAdmit(t, "image signed by key B in namespace B", err)
	_, err = createPod(t, nsA, harness.RestrictedPod("a-in-a", signedA.String()))
	mustAdmit(t, "image signed by key A in namespace A", err)
	_, err = createPod(t, nsNone, harness.RestrictedPod("a-in-none", signedA.String()))
	mustDeny(t, "image signed by key A in a namespace without policies", err, "spec.containers[0].image")
}
