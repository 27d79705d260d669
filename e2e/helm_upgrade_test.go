//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/e2e/harness"
)

// crdRuleMessage is the CRD rule (policy/v1alpha1, key.data) that the "old"
// chart of TestHelmUpgrade lacks: the CRD field its upgrade changes.
const crdRuleMessage = "key.data must be a PEM PUBLIC KEY block (cosign.pub)"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// `helm install` of a release made with the chart as it was before its
// CRDs became templates (they were in crds/, which Helm creates once and
// never upgrades), then `helm upgrade` to this chart, into the real API
// server:
//
//  1. The old CRDs lack a rule (key.data must be PEM) and carry no Helm
//     ownership metadata, as the old chart left them. The upgrade is
//     refused for that ("invalid ownership metadata"); after the adoption
//     step docs/helm.md gives (its command names every CRD the chart has)
//     it succeeds, and the API server then serves the new rule.
//  2. The configuration changed by the upgrade (config.unmatchedImages)
//     is in the ConfigMap, and the Deployment's pod template changed with
//     it (checksum/config), so the gate's pods roll; an upgrade that
//     changes nothing leaves the pod template alone.
//  3. `helm uninstall` keeps the CRDs (helm.sh/resource-policy: keep) and
//     removes the webhook configurations.
//
// Not parallel: it changes the suite's CRDs (restored at the end), so it
// runs alone, before the parallel tests resume. The release goes to
// kube-system, which the suite's gate does not gate (the chart's
// Deployment runs an image the suite never signed); its webhooks select no
// namespace, and the policy webhook is off (the suite's own checks every
// policy). There is no kubelet: the release's pods never run, so the
// pre-delete hook is skipped (--no-hooks; TestUninstallHook runs its
// command).
func TestHelmUpgrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*hangGuard)
	defer cancel()
	const ns = "kube-system"
	release := uniqueRelease(t, "sg-up")
	fullname := release + "-signgate"
	crdDir := filepath.Join(env.Root, "charts", "signgate", "templates", "crds")

	current, err := harness.ReadManifests(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, crd := range current {
		names = append(names, crd.GetName())
	}
	// Whatever happens, the suite's CRDs end as the chart has them.
	t.Cleanup(func() {
		ctx := cleanupContext(t)
		if err := env.Apply(ctx, current...); err != nil {
			t.Errorf("restore the suite's CRDs: %v", err)
		}
		waitCRDRule(ctx, t, release, true)
	})

	// The old chart: this one with its CRDs in crds/, without the rule.
	oldChart := filepath.Join(t.TempDir(), "signgate")
	if err := os.CopyFS(oldChart, os.DirFS(filepath.Join(env.Root, "charts", "signgate"))); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(oldChart, "templates", "crds")); err != nil {
		t.Fatal(err)
	}
	var old []*unstructured.Unstructured
	var oldYAML []byte
	for _, crd := range current {
		crd = crd.DeepCopy()
		if n := dropRule(crd.Object, crdRuleMessage); n == 0 && crd.GetName() != "trustroots.signgate.dev" {
			t.Fatalf("CRD %s has no rule %q to drop", crd.GetName(), crdRuleMessage)
		}
		anns := crd.GetAnnotations()
		delete(anns, "helm.sh/resource-policy")
		crd.SetAnnotations(anns)
		b, err := yaml.Marshal(crd.Object)
		if err != nil {
			t.Fatal(err)
		}
		oldYAML = append(append(oldYAML, "---\n"...), b...)
		old = append(old, crd)
	}
	if err := os.MkdirAll(filepath.Join(oldChart, "crds"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oldChart, "crds", "crds.yaml"), oldYAML, 0o644); err != nil {
		t.Fatal(err)
	}

	// The cluster as the old chart left it: its CRDs, as Helm creates them
	// from crds/ (no ownership metadata). The suite's CRDs are updated in
	// place, not deleted: deleting a CRD deletes every policy of its kind,
	// and Helm skips crds/ files whose CRDs exist.
	crds := env.Dynamic.Resource(crdGVR)
	if err := env.Apply(ctx, old...); err != nil {
		t.Fatalf("CRDs as the old chart made them: %v", err)
	}

	h := newHelm(t)
	values := []string{
		"--set", "webhook.validatePolicies=false",
		"--set-json", `webhook.namespaceSelector={"matchLabels":{"e2e.signgate.dev/never":"` + release + `"}}`,
	}
	t.Cleanup(func() { h.run(cleanupContext(t), "uninstall", release, "-n", ns, "--no-hooks", "--ignore-not-found") })

	if out, err := h.run(ctx, append([]string{"install", release, oldChart, "-n", ns}, values...)...); err != nil {
		t.Fatalf("helm install (old chart): %v\n%s", err, out)
	}
	for _, crd := range old {
		if _, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{}); err != nil {
			t.Fatalf("old chart installed, CRD %s: %v", crd.GetName(), err)
		}
	}
	waitCRDRule(ctx, t, release, false)
	checksum := configChecksum(ctx, t, ns, fullname)

	// 1. The upgrade refuses the CRDs it does not own ...
	upgrade := append([]string{"upgrade", release, filepath.Join(env.Root, "charts", "signgate"), "-n", ns}, values...)
	upgrade = append(upgrade, "--set", "config.unmatchedImages=warn")
	out, err := h.run(ctx, upgrade...)
	if err == nil || !strings.Contains(out, "invalid ownership metadata") || !strings.Contains(out, "CustomResourceDefinition") {
		t.Fatalf("helm upgrade over CRDs Helm does not own: err %v, output:\n%s\nwant it refused for invalid ownership metadata", err, out)
	}

	// ... until the adoption step of docs/helm.md.
	adopt := adoptionCRDs(t)
	slices.Sort(adopt)
	slices.Sort(names)
	if !slices.Equal(adopt, names) {
		t.Fatalf("docs/helm.md's adoption step names the CRDs %v, the chart has %v", adopt, names)
	}
	patch := []byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"Helm"},` +
		`"annotations":{"meta.helm.sh/release-name":"` + release + `","meta.helm.sh/release-namespace":"` + ns + `"}}}`)
	for _, name := range adopt {
		if _, err := crds.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("adopt CRD %s: %v", name, err)
		}
	}
	if out, err := h.run(ctx, upgrade...); err != nil {
		t.Fatalf("helm upgrade after the adoption step: %v\n%s", err, out)
	}
	for _, name := range names {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
			t.Errorf("CRD %s after the upgrade: helm.sh/resource-policy %q, want keep", name, got)
		}
		if got := crd.GetAnnotations()["meta.helm.sh/release-name"]; got != release {
			t.Errorf("CRD %s after the upgrade: release %q, want %q", name, got, release)
		}
	}
	waitCRDRule(ctx, t, release, true)

	// 2. The configuration: in the ConfigMap, and the pods roll.
	cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := cm.Data["config.yaml"]; !regexp.MustCompile(`(?m)^unmatchedImages: warn$`).MatchString(cfg) {
		t.Errorf("ConfigMap %s after the upgrade: config.yaml has no `unmatchedImages: warn`:\n%s", fullname, cfg)
	}
	upgraded := configChecksum(ctx, t, ns, fullname)
	if upgraded == checksum {
		t.Errorf("Deployment %s: checksum/config %s unchanged by a configuration change: its pods would keep the old settings", fullname, upgraded)
	}
	if out, err := h.run(ctx, upgrade...); err != nil {
		t.Fatalf("helm upgrade, nothing changed: %v\n%s", err, out)
	}
	if again := configChecksum(ctx, t, ns, fullname); again != upgraded {
		t.Errorf("Deployment %s: checksum/config %s → %s on an upgrade that changed nothing", fullname, upgraded, again)
	}

	// 3. Uninstall keeps the CRDs, removes the webhook configurations.
	if out, err := h.run(ctx, "uninstall", release, "-n", ns, "--no-hooks"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	for _, name := range names {
		if _, err := crds.Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("CRD %s after helm uninstall: %v, want it kept", name, err)
		}
	}
	adm := env.Client.AdmissionregistrationV1()
	waitGone(ctx, t, "MutatingWebhookConfiguration "+fullname, func() error {
		_, err := adm.MutatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{})
		return err
	})
	waitGone(ctx, t, "ValidatingWebhookConfiguration "+fullname, func() error {
		_, err := adm.ValidatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{})
		return err
	})
}

// helm runs bin/helm against the suite's API server with its own HOME.
type helm struct {
	bin, kubeconfig, home string
}

func newHelm(t *testing.T) *helm {
	t.Helper()
	bin := filepath.Join(env.Root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (run make e2e-tools)", bin, err)
	}
	return &helm{bin: bin, kubeconfig: env.APIServer.Kubeconfig, home: t.TempDir()}
}

// run returns helm's combined output.
func (h *helm) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, h.bin, append(args, "--kubeconfig", h.kubeconfig)...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// dropRule removes, everywhere in obj, the x-kubernetes-validations
// entries whose message is msg, and returns how many it removed.
func dropRule(obj any, msg string) int {
	n := 0
	switch v := obj.(type) {
	case map[string]any:
		for k, child := range v {
			if rules, ok := child.([]any); ok && k == "x-kubernetes-validations" {
				kept := rules[:0]
				for _, r := range rules {
					if m, _ := r.(map[string]any); m != nil && m["message"] == msg {
						n++
						continue
					}
					kept = append(kept, r)
				}
				v[k] = kept
				continue
			}
			n += dropRule(child, msg)
		}
	case []any:
		for _, child := range v {
			n += dropRule(child, msg)
		}
	}
	return n
}

// waitCRDRule waits until the API server serves ClusterImagePolicies with
// (want) or without the key.data rule: a dry-run create of a policy whose
// key is not PEM is refused by the CRD's message, or, without the rule, by
// the suite's policy webhook.
func waitCRDRule(ctx context.Context, t *testing.T, release string, want bool) {
	t.Helper()
	p := harness.ClusterImagePolicy(release+"-not-pem", harness.PolicySpec{
		Images: []string{"registry.invalid/upgrade/*"},
		Keys:   []harness.KeyPair{{Name: "k", PublicPEM: []byte("not a key")}},
	})
	ri := env.Dynamic.Resource(harness.ClusterImagePolicyGVR)
	var last error
	for {
		_, err := ri.Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		last = err
		if err != nil && strings.Contains(err.Error(), crdRuleMessage) == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the API server never served ClusterImagePolicy with the key.data rule = %v; last dry-run create: %v", want, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitGone waits until get returns NotFound.
func waitGone(ctx context.Context, t *testing.T, what string, get func() error) {
	t.Helper()
	for {
		err := get()
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still there (last get: %v)", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// configChecksum is the Deployment's pod template annotation checksum/config.
func configChecksum(ctx context.Context, t *testing.T, ns, name string) string {
	t.Helper()
	dep, err := env.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sum := dep.Spec.Template.Annotations["checksum/config"]
	if sum == "" {
		t.Fatalf("Deployment %s/%s: no checksum/config on its pod template", ns, name)
	}
	return sum
}

// adoptionCRDs are the CRD names in docs/helm.md's adoption step
// (crds="…").
func adoptionCRDs(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(env.Root, "docs", "helm.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*crds="([^"]+)"$`).FindSubmatch(doc)
	if m == nil {
		t.Fatal(`docs/helm.md: no adoption step (crds="…")`)
	}
	return strings.Fields(string(m[1]))
}
