//go:build e2e

package e2e

import (
	"testing"

	"github.com/signgate/signgate/e2e/harness"
)

// A privileged pod is denied with Pod Security Admission's own wording,
// even when its image is signed.
func TestPrivilegedPodDenied(t *testing.T) {
	t.Parallel()
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	d := pushSigned(t, reg, keyA, harness.Classic, repo(t, "app"))
	_, err := createPod(t, ns, harness.PrivilegedPod("privileged", d.String()))
	mustDeny(t, "privileged pod with a signed image", err, `violates PodSecurity "restricted:latest"`, "privileged")
}

// A namespace labelled pod-security.kubernetes.io/enforce=baseline admits
// a pod that "restricted" (the default) denies.
func TestBaselineNamespaceAdmitsWhatRestrictedDenies(t *testing.T) {
	t.Parallel()
	reg := env.Registry()
	d := pushSigned(t, reg, keyA, harness.Classic, repo(t, "app"))
	restricted := namespace(t, nil)
	baseline := namespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
	trust(t, restricted, reg, keyA)
	trust(t, baseline, reg, keyA)

	_, err := createPod(t, restricted, harness.BaselinePod("plain", d.String()))
	mustDeny(t, "baseline-only pod in a default (restricted) namespace", err, `violates PodSecurity "restricted:latest"`)
	_, err = createPod(t, baseline, harness.BaselinePod("plain", d.String()))
	mustAdmit(t, "baseline-only pod in a baseline namespace", err)
	_, err = createPod(t, baseline, harness.PrivilegedPod("privileged", d.String()))
	mustDeny(t, "privileged pod in a baseline namespace", err, `violates PodSecurity "baseline:latest"`)
}
