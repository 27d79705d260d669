//go:build e2e

package e2e

import (
	"context"
	"testing"

	"github.com/signgate/signgate/e2e/harness"
)

// With the registry down, an image whose signature was verified moments
// ago is still admitted from the verdict cache; an image never verified is
// denied with a message that says to retry (fail closed, not "unsigned").
// Not parallel: it stops registry 1, which only this test uses.
func TestRegistryOutage(t *testing.T) {
	reg := env.Registries[1]
	ns := namespace(t, nil)
	trust(t, ns, reg, keyA)
	cached := pushSigned(t, reg, keyA, harness.Classic, repo(t, "cached"))
	fresh := pushSigned(t, reg, keyA, harness.Classic, repo(t, "fresh"))

	_, err := createPod(t, ns, harness.RestrictedPod("first", cached.String()))
	mustAdmit(t, "signed pod while the registry is up", err)

	reg.Stop()
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := reg.Start(ctx); err != nil {
			t.Errorf("restart registry: %v", err)
		}
	})

	_, err = createPod(t, ns, harness.RestrictedPod("cached", cached.String()))
	mustAdmit(t, "same image with the registry down (verdict cache)", err)
	_, err = createPod(t, ns, harness.RestrictedPod("fresh", fresh.String()))
	mustDeny(t, "new image with the registry down", err, "spec.containers[0].image", "retry")
}
