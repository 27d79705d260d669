//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/e2e/harness"
)

// `signgate audit` against the real API server: pods admitted today are
// audited with the cluster's policies (nothing would be denied) and with
// proposed ones: a key rotation to key B lists both pods, each denial
// naming key B; enforcing the warn policy lists the unsigned pod alone,
// and once that pod is deleted audit exits 0. Lists are paginated one
// object per request (--chunk-size 1).
func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	reg := env.Registry()
	ns := namespace(t, nil)
	selector := map[string]string{"kubernetes.io/metadata.name": ns}
	app, legacy := reg.Repo(repo(t, "app")), reg.Repo(repo(t, "legacy"))
	signed := pushSigned(t, reg, keyA, harness.Classic, repo(t, "app"))
	unsigned := pushUnsigned(t, reg, repo(t, "legacy"))

	// Today: the namespace trusts key A for app; legacy is under a
	// ClusterImagePolicy in warn mode (admitted with a warning).
	if err := env.ApplyPolicy(ctx, harness.ImagePolicy(ns, "app", harness.PolicySpec{Images: []string{app}, Keys: []harness.KeyPair{keyA}})); err != nil {
		t.Fatal(err)
	}
	warnPolicy := harness.ClusterImagePolicy("e2e-audit-"+ns, harness.PolicySpec{
		Images: []string{legacy}, Keys: []harness.KeyPair{keyA}, Mode: "warn", NamespaceSelector: selector,
	})
	if err := env.ApplyPolicy(ctx, warnPolicy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(cleanupContext(t), warnPolicy.GetName(), metav1.DeleteOptions{})
	})
	appPod, legacyPod := harness.RestrictedPod("app", signed.String()), harness.RestrictedPod("legacy", unsigned.String())
	waitAdmitted(ctx, t, "signed app pod", dryRunCreatePod(ctx, ns, appPod))
	waitAdmitted(ctx, t, "unsigned legacy pod under a warn policy", dryRunCreatePod(ctx, ns, legacyPod))
	_, err := createPod(t, ns, appPod)
	mustAdmit(t, "signed app pod", err)
	_, err = createPod(t, ns, legacyPod)
	mustAdmit(t, "unsigned legacy pod under a warn policy", err)

	audit := func(policyDir string) (auditReport, int, string) {
		t.Helper()
		args := []string{"audit", "--kubeconfig", env.APIServer.Kubeconfig, "-n", ns, "--config", env.Signgate.ConfigPath,
			"--chunk-size", "1", "-o", "json"}
		if policyDir != "" {
			args = append(args, "--policy-dir", policyDir)
		}
		stdout, stderr, code := signgate(t, args...)
		var r auditReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("signgate %s: exit %d, output is not a report (%v)\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, err, stdout, stderr)
		}
		return r, code, stderr
	}
	decisions := func(r auditReport) map[string]string {
		out := map[string]string{}
		for _, o := range r.Objects {
			out[o.Kind+" "+o.Name] = o.Decision
		}
		return out
	}

	// 1. Today's policies: nothing would be denied; the warning is there.
	r, code, stderr := audit("")
	if code != 0 || r.Kind != "AuditReport" || len(r.Objects) != 2 {
		t.Fatalf("audit with the cluster's policies: exit %d, %d objects (%v), stderr %q; want 0 and the two pods admitted", code, len(r.Objects), decisions(r), stderr)
	}
	for _, o := range r.Objects {
		if o.Name == "legacy" && !strings.Contains(strings.Join(o.Warnings, "\n"), "spec.containers[0].image") {
			t.Errorf("legacy pod audited without the warn policy's warning: %q", o.Warnings)
		}
	}

	// 2. A rotation to key B: both pods would be denied, naming key B.
	rotate := writePolicies(t, harness.ClusterImagePolicy("rotate", harness.PolicySpec{
		Images: []string{app, legacy}, Keys: []harness.KeyPair{keyB}, NamespaceSelector: selector,
	}))
	r, code, stderr = audit(rotate)
	if code != 1 {
		t.Fatalf("audit of the key B rotation: exit %d, stderr %q; want 1", code, stderr)
	}
	for name, d := range map[string]string{"Pod app": "denied", "Pod legacy": "denied"} {
		if decisions(r)[name] != d {
			t.Errorf("key B rotation: %s %q, want %s", name, decisions(r)[name], d)
		}
	}
	for _, o := range r.Objects {
		if msg := strings.Join(o.Messages, "\n"); !strings.Contains(msg, keyB.Name) {
			t.Errorf("key B rotation: pod %s denied with %q, which does not name %s", o.Name, msg, keyB.Name)
		}
	}

	// 3. Enforcing legacy under key A: only the unsigned pod, until it is gone.
	enforce := writePolicies(t, harness.ClusterImagePolicy("enforce", harness.PolicySpec{
		Images: []string{app, legacy}, Keys: []harness.KeyPair{keyA}, NamespaceSelector: selector,
	}))
	r, code, _ = audit(enforce)
	if got := decisions(r); code != 1 || got["Pod app"] != "admitted" || got["Pod legacy"] != "denied" {
		t.Fatalf("audit of enforcing key A: exit %d, %v; want 1, app admitted, legacy denied", code, got)
	}
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, "legacy", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	waitGone(ctx, t, "pod "+ns+"/legacy", func() error {
		_, err := env.Client.CoreV1().Pods(ns).Get(ctx, "legacy", metav1.GetOptions{})
		return err
	})
	r, code, stderr = audit(enforce)
	if got := decisions(r); code != 0 || len(got) != 1 || got["Pod app"] != "admitted" {
		t.Errorf("audit of enforcing key A after the unsigned pod is deleted: exit %d, %v, stderr %q; want 0 and app admitted", code, got, stderr)
	}
}

// auditReport is the part of `signgate audit -o json` the test reads.
type auditReport struct {
	Kind    string `json:"kind"`
	Objects []struct {
		Kind     string   `json:"kind"`
		Name     string   `json:"name"`
		Decision string   `json:"decision"`
		Messages []string `json:"messages"`
		Warnings []string `json:"warnings"`
	} `json:"objects"`
}

// writePolicies writes objs as YAML into a new directory and returns it.
func writePolicies(t *testing.T, objs ...*unstructured.Unstructured) string {
	t.Helper()
	dir := t.TempDir()
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, o.GetName()+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
