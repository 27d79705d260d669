//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
	"github.com/signgate/signgate/internal/tuftest"
)

// A TrustRoot read from a TUF repository the test serves on 127.0.0.1
// (internal/tuftest: real TUF metadata, consistent snapshots), refreshed
// every second by the gate:
//
//  1. first fetch: the repository's trusted root is the local Sigstore
//     without its log, and an image signed keyless without a log entry
//     (cosign v2.6.5) is admitted;
//  2. refresh: the repository publishes the trusted root with the log;
//     the same image is now denied for its missing log entry (the verdict
//     cached under the old trusted root is not reused), and one signed
//     with a log entry is admitted;
//  3. key rotation: the repository rotates its root keys (root v2 signed
//     by the old and new keys, everything else by the new ones) and
//     publishes the log-less trusted root again; the gate, still starting
//     from root v1, follows and admits the first image again;
//  4. unreachable mirror: the repository stops; the gate keeps the last
//     good trusted root (a newly signed image is admitted) while
//     signgate_trustroot_refresh_failing is 1 and
//     signgate_trustroot_age_seconds grows.
func TestTrustRootFromTUF(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	sig, err := harness.StartSigstore(ctx, t, env.Bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := tuftest.New(sig.NoLogTrustedRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mirror.Close)
	reg := env.Registry()
	sign := func(n string, withLog bool) (name.Digest, string) {
		t.Helper()
		d := pushUnsigned(t, reg, repo(t, n))
		c := env.Cosign
		if withLog {
			c = env.Cosign3
		}
		if err := sig.SignKeyless(ctx, c, releaseWorkflow, d, withLog); err != nil {
			t.Fatal(err)
		}
		return d, reg.Repo(repo(t, n)) + ":v1"
	}
	_, noLogTag := sign("no-log", false)
	_, loggedTag := sign("logged", true)

	const trustRoot = "e2e-tuf"
	objs := releasePolicy(trustRoot, reg.Repo(repo(t, "**")), sig.IssuerURL, map[string]any{"tuf": map[string]any{
		"mirror":          mirror.URL,
		"root":            map[string]any{"inline": string(mirror.Root())},
		"refreshInterval": "1s",
	}})
	if err := env.Apply(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, trustRoot, metav1.DeleteOptions{})
		env.Dynamic.Resource(harness.TrustRootGVR).Delete(ctx, trustRoot, metav1.DeleteOptions{})
	})
	ns := namespace(t, nil)
	metric := func(m string) float64 {
		t.Helper()
		v, err := env.Signgate.Counter(ctx, m, map[string]string{"trustroot": trustRoot})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// denied waits until a dry run of tag is denied with want.
	denied := func(what, tag, want string) {
		t.Helper()
		waitFor(ctx, t, what+" to be denied with "+want, func() (bool, error) {
			err := dryRunCreatePod(ctx, ns, harness.RestrictedPod("probe", tag))()
			return err != nil && strings.Contains(err.Error(), want), err
		})
	}

	// 1. First fetch.
	waitAdmitted(ctx, t, "image signed without a log entry, under the log-less trusted root from TUF",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("probe", noLogTag)))
	if got := metric("signgate_trustroot_refresh_failing"); got != 0 {
		t.Errorf("refresh failing = %v after the first fetch, want 0", got)
	}

	// 2. Refresh to the trusted root with the log.
	if err := mirror.Publish(sig.TrustedRoot); err != nil {
		t.Fatal(err)
	}
	denied("image signed without a log entry, after the TUF repository published a trusted root with a log",
		noLogTag, "no transparency log entry verified against TrustRoot "+trustRoot)
	_, err = createPod(t, ns, harness.RestrictedPod("logged", loggedTag))
	mustAdmit(t, "image signed with a log entry, under the trusted root with the log", err)

	// 3. Root key rotation, then the log-less trusted root again.
	if err := mirror.RotateRootKeys(); err != nil {
		t.Fatal(err)
	}
	if err := mirror.Publish(sig.NoLogTrustedRoot); err != nil {
		t.Fatal(err)
	}
	waitAdmitted(ctx, t, "image signed without a log entry, after the TUF repository rotated its keys",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("probe", noLogTag)))

	// 4. The mirror goes away: the last good trusted root is kept.
	mirror.Stop()
	waitFor(ctx, t, "signgate_trustroot_refresh_failing to be 1", func() (bool, error) {
		v := metric("signgate_trustroot_refresh_failing")
		return v == 1, fmt.Errorf("signgate_trustroot_refresh_failing = %v", v)
	})
	age := metric("signgate_trustroot_age_seconds")
	waitFor(ctx, t, "signgate_trustroot_age_seconds to grow", func() (bool, error) {
		v := metric("signgate_trustroot_age_seconds")
		return v > age, fmt.Errorf("signgate_trustroot_age_seconds = %v, was %v", v, age)
	})
	t0 := time.Now()
	fresh, freshTag := sign("after-mirror-down", false)
	pod, err := createPod(t, ns, harness.RestrictedPod("after-mirror-down", freshTag))
	mustAdmit(t, "image signed after the mirror went away, under the last good trusted root", err)
	if err == nil {
		pinnedAs(t, pod.Spec.Containers[0].Image, freshTag, fresh)
	}
	t.Logf("measure: trusted root age %.0fs while the mirror is down (signed and admitted in %s)",
		metric("signgate_trustroot_age_seconds"), time.Since(t0).Round(time.Millisecond))
}
