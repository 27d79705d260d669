//go:build e2e

package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// The chart's pre-delete hook (templates/uninstall-hook.yaml) against the
// real API server. The suite has no kubelet, so the Job never runs: the
// test runs its command line (the rendered Job's args) with bin/signgate,
// as the hook's ServiceAccount with the hook's RBAC, on webhook
// configurations named the way the chart names them. Those configurations
// are harmless to the rest of the suite: failurePolicy Ignore, a URL
// nothing serves, a namespaceSelector no namespace matches.
func TestUninstallHook(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	release := uniqueRelease(t, "uninst")
	objs := helmTemplate(ctx, t, release, ns, nil, "uninstall-hook")

	var job *unstructured.Unstructured
	var rbac []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Job":
			job = o
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
			rbac = append(rbac, o)
		default:
			t.Fatalf("uninstall-hook.yaml rendered a %s", o.GetKind())
		}
	}
	if job == nil || len(rbac) != 3 {
		t.Fatalf("uninstall-hook.yaml: Job %v and %d RBAC objects, want a Job, a ServiceAccount, a ClusterRole and a ClusterRoleBinding", job != nil, len(rbac))
	}
	containers, _, _ := unstructured.NestedSlice(job.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("hook Job: %d containers, want 1", len(containers))
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	sa, _, _ := unstructured.NestedString(job.Object, "spec", "template", "spec", "serviceAccountName")
	flagValue := func(flag string) string {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("hook args %v: no %s NAME", args, flag)
		}
		return args[i+1]
	}
	mutName, valName := flagValue("--mutating"), flagValue("--validating")
	if want := release + "-signgate"; mutName != want || valName != want {
		t.Fatalf("hook args %v name %q and %q, want the chart's webhook configurations %q", args, mutName, valName, want)
	}

	// Webhook configurations with the chart's names that never match.
	adm := env.Client.AdmissionregistrationV1()
	never := &metav1.LabelSelector{MatchLabels: map[string]string{"e2e.signgate.dev/never": release}}
	cc := admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/unserved")}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	ignore, none := ptr.To(admissionregistrationv1.Ignore), ptr.To(admissionregistrationv1.SideEffectClassNone)
	_, err := adm.MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: mutName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "never.mutate.e2e.signgate.dev", ClientConfig: cc, Rules: rules, FailurePolicy: ignore, SideEffects: none,
			NamespaceSelector: never, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = adm.ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: valName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "never.validate.e2e.signgate.dev", ClientConfig: cc, Rules: rules, FailurePolicy: ignore, SideEffects: none,
			NamespaceSelector: never, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	t.Cleanup(func() {
		ctx := cleanupContext(t)
		_ = adm.MutatingWebhookConfigurations().Delete(ctx, mutName, metav1.DeleteOptions{})
		_ = adm.ValidatingWebhookConfigurations().Delete(ctx, valName, metav1.DeleteOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}

	// The hook's ServiceAccount, ClusterRole and binding, and a kubeconfig
	// with a token of that ServiceAccount.
	if err := env.Apply(ctx, rbac...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := cleanupContext(t)
		for _, o := range rbac {
			switch o.GetKind() {
			case "ClusterRole":
				_ = env.Client.RbacV1().ClusterRoles().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
			case "ClusterRoleBinding":
				_ = env.Client.RbacV1().ClusterRoleBindings().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
			}
		}
	})
	tok, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for the hook's ServiceAccount %s/%s: %v", ns, sa, err)
	}
	hookKubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: env.APIServer.URL, CertificateAuthorityData: env.APIServer.CAPEM}
	cfg.AuthInfos["hook"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["hook"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "hook"}
	cfg.CurrentContext = "hook"
	if err := clientcmd.WriteToFile(*cfg, hookKubeconfig); err != nil {
		t.Fatal(err)
	}

	// The hook's RBAC names only this release's configurations.
	stdout, stderr, code := signgate(t, "uninstall-webhooks", "--validating", "other-"+valName, "--kubeconfig", hookKubeconfig)
	if code != 1 || !strings.Contains(stderr, "forbidden: the user needs get and delete on validatingwebhookconfigurations") {
		t.Errorf("another configuration as the hook: exit %d, stdout %q, stderr %q; want 1 and forbidden naming the RBAC needed", code, stdout, stderr)
	}

	// The hook's command line, as the hook.
	stdout, stderr, code = signgate(t, append(slices.Clone(args), "--kubeconfig", hookKubeconfig)...)
	t.Logf("signgate %s\nexit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	want := "MutatingWebhookConfiguration " + mutName + ": deleted\nValidatingWebhookConfiguration " + valName + ": deleted\n"
	if stdout != want || stderr != "" {
		t.Errorf("stdout %q, stderr %q; want %q and nothing on stderr", stdout, stderr, want)
	}
	if _, err := adm.MutatingWebhookConfigurations().Get(ctx, mutName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("MutatingWebhookConfiguration %s after the hook: %v, want NotFound", mutName, err)
	}
	if _, err := adm.ValidatingWebhookConfigurations().Get(ctx, valName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ValidatingWebhookConfiguration %s after the hook: %v, want NotFound", valName, err)
	}

	// Idempotent: again as the hook, and as the admin.
	for _, kc := range []string{hookKubeconfig, env.APIServer.Kubeconfig} {
		stdout, stderr, code = signgate(t, "uninstall-webhooks", "--mutating", mutName, "--validating", valName, "--kubeconfig", kc)
		want := "MutatingWebhookConfiguration " + mutName + ": not found (already removed)\nValidatingWebhookConfiguration " + valName + ": not found (already removed)\n"
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("second run (%s): exit %d, stdout %q, stderr %q; want 0, %q", filepath.Base(filepath.Dir(kc)), code, stdout, stderr, want)
		}
	}
}
