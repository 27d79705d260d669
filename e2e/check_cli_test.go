//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/signgate/signgate/e2e/harness"
)

// `signgate check --cluster` reads the ImagePolicies and Namespaces of the
// real API server (read only, through the same ClusterSource as the
// webhook) and decides the way the webhook does: a pod signed with the
// trusted key is admitted, an unsigned one denied under the namespace's
// policy.
func TestCheckCluster(t *testing.T) {
	t.Parallel()
	reg := env.Registry()
	ns := namespace(t, nil)
	trust(t, ns, reg, keyA)
	signed := pushSigned(t, reg, keyA, harness.Classic, repo(t, "signed"))
	unsigned := pushUnsigned(t, reg, repo(t, "unsigned"))

	dir := t.TempDir()
	for name, image := range map[string]string{"signed": signed.String(), "unsigned": unsigned.String()} {
		pod := harness.RestrictedPod(name, image)
		pod.APIVersion, pod.Kind = "v1", "Pod"
		data, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, harness.GateConfig(reg.Host), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := signgate(t, "check", "--cluster", "--kubeconfig", env.APIServer.Kubeconfig,
		"--config", config, "-n", ns, "-f", dir, "-o", "json")
	t.Logf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	if code != 1 {
		t.Fatalf("signgate check --cluster: exit %d, want 1 (one pod denied)", code)
	}
	var report struct {
		Objects []struct {
			Name     string `json:"name"`
			Decision string `json:"decision"`
			Findings []struct {
				Code   string `json:"code"`
				Policy string `json:"policy"`
			} `json:"findings"`
		} `json:"objects"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("report: %v", err)
	}
	got := map[string]string{}
	for _, o := range report.Objects {
		got[o.Name] = o.Decision
		if o.Name == "unsigned" && (len(o.Findings) == 0 || o.Findings[0].Code != "not-verified" || o.Findings[0].Policy != "ImagePolicy "+ns+"/trust") {
			t.Errorf("unsigned pod's findings = %+v, want not-verified under ImagePolicy %s/trust", o.Findings, ns)
		}
	}
	if got["signed"] != "admitted" || got["unsigned"] != "denied" {
		t.Errorf("decisions = %v, want signed admitted and unsigned denied", got)
	}
}
