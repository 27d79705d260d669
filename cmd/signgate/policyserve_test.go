package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
)

// servePolicies starts `signgate serve` with files (name → YAML) as its
// --policy-dir and a GateConfiguration that reaches reg (plain HTTP,
// loopback allowed) plus extraConfig, and returns the webhook's base URL.
func servePolicies(t *testing.T, reg *registrytest.Registry, extraConfig string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	o := testOptions(t, dir)
	for name, doc := range files {
		if err := os.WriteFile(filepath.Join(o.PolicyDir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o.ConfigFile = filepath.Join(dir, "config.yaml")
	cfg := "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n" +
		"registry: {insecureRegistries: [\"" + reg.Host + "\"], allowedHosts: [\"" + reg.Host + "\"]}\n" + extraConfig
	if err := os.WriteFile(o.ConfigFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := startServer(t, o)
	return "https://" + s.WebhookAddr().String()
}

// validatePod sends /validate the CREATE of a pod running image in
// namespace and checks the answer: allowed when want is "", else denied
// with a message containing want.
func validatePod(t *testing.T, base, namespace, image, want string) {
	t.Helper()
	client, _ := loadClient(1)
	check := wantAllowed
	if want != "" {
		check = wantDenied(want)
	}
	c := reviewCase{name: t.Name(), path: "/validate?timeout=10s", body: podReview("CREATE", namespace, podJSON([]string{image}, false)), check: check}
	if _, err := send(t.Context(), client, base, c); err != nil {
		t.Error(err)
	}
}
