//go:build e2e

package e2e

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
)

// A Deployment whose template has an unsigned image fails at create,
// instead of being stored and never producing pods.
func TestDeploymentUnsignedDeniedAtCreate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	unsigned := pushUnsigned(t, reg, repo(t, "unsigned"))
	signed := pushSigned(t, reg, keyA, harness.Classic, repo(t, "signed"))

	deploys := env.Client.AppsV1().Deployments(ns)
	_, err := deploys.Create(ctx, harness.RestrictedDeployment("unsigned", unsigned.String()), metav1.CreateOptions{})
	mustDeny(t, "Deployment with an unsigned image", err, "spec.template.spec.containers[0].image")
	_, err = deploys.Create(ctx, harness.RestrictedDeployment("signed", signed.String()), metav1.CreateOptions{})
	mustAdmit(t, "Deployment with a signed image", err)
}

// An ephemeral container added the way `kubectl debug` does (the
// pods/ephemeralcontainers subresource) is checked like any other.
func TestEphemeralContainer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	app := pushSigned(t, reg, keyA, harness.Classic, repo(t, "app"))
	debugSigned := pushSigned(t, reg, keyA, harness.Classic, repo(t, "debug"))
	debugUnsigned := pushUnsigned(t, reg, repo(t, "debug-unsigned"))

	pods := env.Client.CoreV1().Pods(ns)
	pod, err := pods.Create(ctx, harness.RestrictedPod("target", app.String()), metav1.CreateOptions{})
	mustAdmit(t, "target pod", err)

	withDebug := func(name, image string) *corev1.Pod {
		p := pod.DeepCopy()
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name:            name,
				Image:           image,
				SecurityContext: harness.RestrictedContainerSecurityContext(),
			},
			TargetContainerName: "c0",
		})
		return p
	}
	_, err = pods.UpdateEphemeralContainers(ctx, pod.Name, withDebug("debug-unsigned", debugUnsigned.String()), metav1.UpdateOptions{})
	mustDeny(t, "ephemeral container with an unsigned image", err, "spec.ephemeralContainers[0].image")

	got, err := pods.UpdateEphemeralContainers(ctx, pod.Name, withDebug("debug", debugSigned.String()), metav1.UpdateOptions{})
	mustAdmit(t, "ephemeral container with a signed image", err)
	if n := len(got.Spec.EphemeralContainers); n != 1 {
		t.Errorf("stored pod has %d ephemeral containers, want 1", n)
	}
}

// Changing a running pod's image to an unsigned one is denied; to another
// signed one, admitted.
func TestPodImageUpdate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	v1 := pushSigned(t, reg, keyA, harness.Classic, repo(t, "v1"))
	v2 := pushSigned(t, reg, keyA, harness.Classic, repo(t, "v2"))
	unsigned := pushUnsigned(t, reg, repo(t, "unsigned"))

	pods := env.Client.CoreV1().Pods(ns)
	pod, err := pods.Create(ctx, harness.RestrictedPod("app", v1.String()), metav1.CreateOptions{})
	mustAdmit(t, "pod", err)

	bad := pod.DeepCopy()
	bad.Spec.Containers[0].Image = unsigned.String()
	_, err = pods.Update(ctx, bad, metav1.UpdateOptions{})
	mustDeny(t, "image update to an unsigned image", err, "spec.containers[0].image")

	good := pod.DeepCopy()
	good.Spec.Containers[0].Image = v2.String()
	got, err := pods.Update(ctx, good, metav1.UpdateOptions{})
	mustAdmit(t, "image update to a signed image", err)
	if got.Spec.Containers[0].Image != v2.String() {
		t.Errorf("stored image = %q, want %q", got.Spec.Containers[0].Image, v2)
	}
}

// A dry-run create gets exactly the decision (and message) of a real one,
// and stores nothing.
func TestDryRunSameDecision(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	reg := env.Registry()
	trust(t, ns, reg, keyA)
	signed := pushSigned(t, reg, keyA, harness.Classic, repo(t, "signed"))
	unsigned := pushUnsigned(t, reg, repo(t, "unsigned"))
	pods := env.Client.CoreV1().Pods(ns)
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	got, err := pods.Create(ctx, harness.RestrictedPod("signed", reg.Repo(repo(t, "signed"))+":v1"), dry)
	mustAdmit(t, "dry-run signed pod", err)
	pinnedAs(t, got.Spec.Containers[0].Image, reg.Repo(repo(t, "signed"))+":v1", signed)
	if _, err := pods.Get(ctx, "signed", getOpts); !apierrors.IsNotFound(err) {
		t.Errorf("after a dry-run create, get = %v, want not found", err)
	}

	_, dryErr := pods.Create(ctx, harness.RestrictedPod("unsigned", unsigned.String()), dry)
	dryMsg := mustDeny(t, "dry-run unsigned pod", dryErr, "spec.containers[0].image")
	_, realErr := pods.Create(ctx, harness.RestrictedPod("unsigned", unsigned.String()), metav1.CreateOptions{})
	realMsg := mustDeny(t, "unsigned pod", realErr, "spec.containers[0].image")
	if dryMsg != realMsg {
		t.Errorf("dry-run denial differs from the real one:\n dry-run: %s\n real:    %s", dryMsg, realMsg)
	}
}
