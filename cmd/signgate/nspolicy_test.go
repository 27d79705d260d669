package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
)

// TestServeNamespacePoliciesOnlyAdd (issue 26) runs `signgate serve` with
// --policy-dir and unmatchedImages: deny. An ImagePolicy, which anyone who
// can edit its namespace can write, never lets in an image no
// ClusterImagePolicy covers — not by static pass, not by mode audit or
// warn, not by trusting a key the namespace owner controls — unless the
// configuration says namespace policies cover images. It still adds
// requirements on top of a ClusterImagePolicy.
func TestServeNamespacePoliciesOnlyAdd(t *testing.T) {
	reg := registrytest.New(t)
	corpKey, ownerKey := registrytest.NewSigner(t), registrytest.NewSigner(t)
	// Signed by the namespace owner's key only: no ClusterImagePolicy covers it.
	owned := reg.PushImage(t, "third-party/app", "v1")
	reg.Sign(t, ownerKey, owned, registrytest.Classic)
	// Signed by the corporate key only, which the ClusterImagePolicy trusts.
	corp := reg.PushImage(t, "corp/app", "v1")
	reg.Sign(t, corpKey, corp, registrytest.Classic)

	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policies")
	if err := os.Mkdir(policyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	indent := func(s *registrytest.Signer) string {
		return "          " + strings.ReplaceAll(strings.TrimSpace(string(s.PublicPEM)), "\n", "\n          ")
	}
	authority := func(s *registrytest.Signer) string {
		return "  authorities:\n    - name: key\n      key:\n        data: |\n" + indent(s) + "\n"
	}
	policies := map[string]string{
		"corp.yaml": "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: corp}\nspec:\n" +
			"  images: [{glob: \"" + reg.Host + "/corp/**\"}]\n" + authority(corpKey),
		"static-pass.yaml": imagePolicy("ns-static", "**", "  static: {action: pass}\n"),
		"audit.yaml":       imagePolicy("ns-audit", "**", "  mode: audit\n"+authority(corpKey)),
		"warn.yaml":        imagePolicy("ns-warn", "**", "  mode: warn\n  static: {action: fail}\n"),
		"owner-key.yaml":   imagePolicy("ns-key", "**", "  mode: enforce\n"+authority(ownerKey)),
		"second-key.yaml":  imagePolicy("ns-extra", reg.Host+"/corp/**", authority(ownerKey)),
	}
	for name, doc := range policies {
		if err := os.WriteFile(filepath.Join(policyDir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serveWith := func(coverImages bool) string {
		t.Helper()
		config := filepath.Join(t.TempDir(), "config.yaml")
		cfg := "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: deny\n" +
			"registry: {insecureRegistries: [\"" + reg.Host + "\"], allowedHosts: [\"" + reg.Host + "\"]}\n"
		if coverImages {
			cfg += "policies: {namespacePoliciesCoverImages: true}\n"
		}
		if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		o := testOptions(t, t.TempDir())
		o.PolicyDir, o.ConfigFile = policyDir, config
		s, _ := startServer(t, o)
		return "https://" + s.WebhookAddr().String()
	}
	strict, optIn := serveWith(false), serveWith(true)
	client, _ := loadClient(1)

	tests := []struct {
		name      string
		base      string
		namespace string
		image     string
		want      string // substring of the denial; "" = allowed
	}{
		{"static pass on **", strict, "ns-static", owned.String(),
			"ImagePolicy ns-static/mine is invalid: static.action pass: an ImagePolicy cannot admit images without a signature"},
		{"mode audit", strict, "ns-audit", owned.String(),
			"ImagePolicy ns-audit/mine is invalid: mode audit: an ImagePolicy must use mode enforce"},
		{"mode warn", strict, "ns-warn", owned.String(),
			"ImagePolicy ns-warn/mine is invalid: mode warn: an ImagePolicy must use mode enforce"},
		{"enforced with the owner's key", strict, "ns-key", owned.String(),
			"no ClusterImagePolicy covers " + reg.Host + "/third-party/app, and ImagePolicies of namespace ns-key only add requirements"},
		{"enforced with the owner's key, namespacePoliciesCoverImages", optIn, "ns-key", owned.String(), ""},
		{"static pass stays invalid with namespacePoliciesCoverImages", optIn, "ns-static", owned.String(),
			"ImagePolicy ns-static/mine is invalid"},
		{"no ImagePolicy: unmatched", strict, "ns-plain", owned.String(),
			"no ClusterImagePolicy or ImagePolicy in namespace ns-plain covers"},
		{"cluster key suffices without an ImagePolicy", strict, "ns-plain", corp.String(), ""},
		{"second key required on top of the cluster's", strict, "ns-extra", corp.String(), "ImagePolicy ns-extra/mine"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := wantAllowed
			if tc.want != "" {
				check = wantDenied(tc.want)
			}
			c := reviewCase{name: tc.name, path: "/validate?timeout=10s",
				body: podReview("CREATE", tc.namespace, podJSON([]string{tc.image}, false)), check: check}
			if _, err := send(t.Context(), client, tc.base, c); err != nil {
				t.Error(err)
			}
		})
	}
}

// imagePolicy is ImagePolicy "mine" in namespace on glob with the rest of
// its spec.
func imagePolicy(namespace, glob, spec string) string {
	return "apiVersion: signgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: mine, namespace: " + namespace + "}\nspec:\n" +
		"  images: [{glob: \"" + glob + "\"}]\n" + spec
}
