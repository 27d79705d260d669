//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/signgate/signgate/e2e/harness"
	"github.com/signgate/signgate/policy"
)

// chartImageDigest pins the gate's image in the rendered Deployment. The
// image is never pulled (there is no kubelet); a digest keeps the gate from
// resolving a tag against a registry the test cannot reach.
const chartImageDigest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// The Helm chart, rendered with a URL webhook, is accepted by a real API
// server: every object validates, and the gate's own Deployment passes the
// gate's Pod Security "restricted" checks.
//
// How each object is put into the shared environment:
//   - the webhook configurations are only dry-run created (DryRun All):
//     they point at a dead address (127.0.0.1:1) with failurePolicy Fail,
//     and registering them for real would deny every pod of every parallel
//     test (TestOwnImageThroughChart registers them for real, scoped to its
//     own namespace with webhook.namespaceSelector);
//   - everything else is created for real in a namespace of the test's own,
//     under a unique release name (the ClusterRoles and ClusterRoleBinding
//     are named after it and deleted at cleanup);
//   - the Deployment's namespace is gated by the suite's signgate (only
//     kube-system is excluded), so the test lets the chart's image pass
//     there with a static "pass" ClusterImagePolicy selecting only that
//     namespace (a namespace's ImagePolicy may not pass images): the
//     Deployment is then stored only if signgate's workload Pod Security
//     check (restricted, the default) admits its template.
func TestChartRendersAcceptedByAPIServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	release := uniqueRelease(t, "sg-e2e")
	ns := release + "-ns"
	nsLabel := map[string]string{"e2e.signgate.dev/chart-render": release}
	if err := env.CreateNamedNamespace(ctx, ns, nsLabel); err != nil {
		t.Fatal(err)
	}

	caBundle := base64.StdEncoding.EncodeToString(env.CA.CertPEM)
	render := func(templates ...string) []*unstructured.Unstructured {
		t.Helper()
		return helmTemplate(ctx, t, release, ns, []string{
			"--set", "webhook.url=https://127.0.0.1:1",
			"--set", "webhook.caBundle=" + caBundle,
			"--set", "image.digest=" + chartImageDigest,
		}, templates...)
	}

	// Cluster-scoped objects are named after the release; delete them at
	// cleanup (the namespaced ones go with nothing else in the suite).
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		rbac := env.Client.RbacV1()
		fullname := release + "-signgate"
		for _, n := range []string{fullname, fullname + "-imagepolicy-edit", fullname + "-imagepolicy-view"} {
			if err := rbac.ClusterRoles().Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete ClusterRole %s: %v", n, err)
			}
		}
		if err := rbac.ClusterRoleBindings().Delete(ctx, fullname, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete ClusterRoleBinding %s: %v", fullname, err)
		}
	})

	// Objects created for real.
	objs := render("serviceaccount", "rbac", "configmap", "networkpolicy", "pdb", "service")
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding" {
			if !strings.HasPrefix(o.GetName(), release) {
				t.Fatalf("%s %s is not named after the release %s: it would clash with other tests", o.GetKind(), o.GetName(), release)
			}
		} else if o.GetNamespace() != ns {
			t.Fatalf("%s %s rendered in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
	}
	if err := env.Apply(ctx, objs...); err != nil {
		t.Fatal(err)
	}

	// The gate's configuration from the chart is valid.
	configYAML := renderedConfig(t, objs)
	if _, err := policy.ParseConfig([]byte(configYAML)); err != nil {
		t.Errorf("chart's config.yaml: %v\n%s", err, configYAML)
	}

	// The Deployment: trust its image, then create it for real.
	pass := harness.ClusterImagePolicy(release+"-chart-image", harness.PolicySpec{
		Images: []string{"ghcr.io/signgate/signgate"}, Static: "pass", NamespaceSelector: nsLabel,
	})
	if err := env.ApplyPolicy(ctx, pass); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, pass.GetName(), metav1.DeleteOptions{})
	})
	dep := renderedDeployment(t, render("deployment"))
	dep.Namespace = ns
	deployments := env.Client.AppsV1().Deployments(ns)
	// The gate sees the new policy through an informer: dry-run until
	// it admits, so the real creation below is a single attempt.
	waitAdmitted(ctx, t, "the chart's Deployment in "+ns, func() error {
		_, err := deployments.Create(ctx, dep.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	})
	if _, err := deployments.Create(ctx, dep.DeepCopy(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the chart's Deployment in %s: %v", ns, err)
	}
	stored, err := deployments.Get(ctx, dep.Name, getOpts)
	if err != nil {
		t.Fatal(err)
	}
	checkRestricted(t, stored)

	// The webhook configurations: server-side dry run only (see above).
	for _, o := range render("mutatingwebhookconfiguration", "validatingwebhookconfiguration") {
		gvr, ok := map[string]schema.GroupVersionResource{
			"MutatingWebhookConfiguration":   {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
			"ValidatingWebhookConfiguration": {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"},
		}[o.GetKind()]
		if !ok {
			t.Fatalf("unexpected %s %s in the webhook templates", o.GetKind(), o.GetName())
		}
		if _, err := env.Dynamic.Resource(gvr).Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("dry-run create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		_, err := env.Dynamic.Resource(gvr).Get(ctx, o.GetName(), getOpts)
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s %s: get after a dry run = %v, want NotFound (nothing may be registered)", o.GetKind(), o.GetName(), err)
		}
	}
}

// checkRestricted fails t unless every container of d runs under the
// restricted security context the chart promises.
func checkRestricted(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("pod securityContext.runAsNonRoot is not true: %+v", pod.SecurityContext)
	}
	if len(pod.Containers) == 0 {
		t.Fatal("stored Deployment has no containers")
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("container %s: runAsNonRoot is not true", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != corev1.Capability("ALL") {
			t.Errorf("container %s: capabilities %+v, want drop [ALL]", c.Name, sc.Capabilities)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil && pod.SecurityContext != nil {
			seccomp = pod.SecurityContext.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s: seccompProfile %+v, want RuntimeDefault", c.Name, seccomp)
		}
	}
}
