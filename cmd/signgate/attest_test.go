package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
)

// provenance is an SLSA v1 provenance predicate naming builder.
func provenance(builder string) map[string]any {
	return map[string]any{"runDetails": map[string]any{"builder": map[string]any{"id": builder}}}
}

// TestServeAttestations runs `signgate serve` with a ClusterImagePolicy
// whose authority requires SLSA provenance from the company's builder
// and an SBOM: admitted only with both; each denial names the attestation,
// the authority and why.
func TestServeAttestations(t *testing.T) {
	const builder = "https://github.com/acme/.github/workflows/build.yml"
	reg := registrytest.New(t)
	ci, other := registrytest.NewSigner(t), registrytest.NewSigner(t)
	sbom := map[string]any{"spdxVersion": "SPDX-2.3", "packages": []any{}}
	image := func(tag string) name.Digest {
		d := reg.PushImage(t, "acme/app", tag)
		reg.Sign(t, ci, d, registrytest.Classic)
		return d
	}
	good := image("good")
	reg.Attest(t, ci, good, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1", Predicate: provenance(builder)})
	reg.Attest(t, ci, good, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", Predicate: sbom})
	evil := image("evil")
	reg.Attest(t, ci, evil, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1", Predicate: provenance("https://github.com/evil/x")})
	reg.Attest(t, ci, evil, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", Predicate: sbom})
	noSBOM := image("no-sbom")
	reg.Attest(t, ci, noSBOM, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1", Predicate: provenance(builder)})
	otherKey := image("other-key")
	reg.Attest(t, other, otherKey, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1", Predicate: provenance(builder)})
	reg.Attest(t, ci, otherKey, registrytest.Attestation{PredicateType: "https://spdx.dev/Document", Predicate: sbom})

	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(ci.PublicPEM)), "\n", "\n          ")
	policy := "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: built}\nspec:\n" +
		"  images: [{glob: \"" + reg.Host + "/acme/**\"}]\n  authorities:\n    - name: ci\n      key:\n        data: |\n" + key + "\n" +
		"      attestations:\n" +
		"        - name: provenance\n          predicateType: slsaprovenance1\n" +
		"          condition: predicate.runDetails.builder.id == '" + builder + "'\n" +
		"          message: \"'built by ' + predicate.runDetails.builder.id\"\n" +
		"        - {name: sbom, predicateType: spdxjson}\n"
	base := servePolicies(t, reg, "", map[string]string{"built.yaml": policy})

	tests := []struct {
		name  string
		image name.Digest
		want  string // substring of the denial; "" = allowed
	}{
		{"provenance from our builder and an SBOM", good, ""},
		{"built elsewhere", evil, `attestation provenance (https://slsa.dev/provenance/v1) of authority ci: condition false: built by https://github.com/evil/x; required by ClusterImagePolicy built`},
		{"no SBOM", noSBOM, `attestation sbom (https://spdx.dev/Document) of authority ci: no attestation of this type signed by the authority`},
		{"provenance signed by another key", otherKey, `attestation provenance (https://slsa.dev/provenance/v1) of authority ci: no attestation of this type signed by the authority`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { validatePod(t, base, "team-a", tc.image.String(), tc.want) })
	}
}

// TestVerifyAttestation: `signgate verify --attestation TYPE --condition`
// against attestations made in the test.
func TestVerifyAttestation(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	ci := registrytest.NewSigner(t)
	keyFile := ci.WritePublicKey(t, t.TempDir())
	d := reg.PushImage(t, "acme/app", "v1")
	reg.Sign(t, ci, d, registrytest.Classic)
	reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1", Predicate: provenance("https://github.com/acme/build")})
	image := reg.Host + "/acme/app:v1"
	ins := []string{"--key", keyFile, "--insecure-registry", reg.Host, "--allow-host", reg.Host}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // substring of stdout (0) or stderr
	}{
		{"condition holds", []string{"--attestation", "slsaprovenance1", "--condition", `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`}, exitOK, "verified by: " + keyFile},
		{"presence", []string{"--attestation", "https://slsa.dev/provenance/v1"}, exitOK, "verified by: "},
		{"condition false", []string{"--attestation", "slsaprovenance1", "--condition", `predicate.runDetails.builder.id == "x"`, "--message", `'built by ' + predicate.runDetails.builder.id`}, exitDenied,
			"condition false: built by https://github.com/acme/build"},
		{"condition false: the advice is to attest, not to sign", []string{"--attestation", "slsaprovenance1", "--condition", `false`}, exitDenied,
			"To fix: attest it with the same signer (`cosign attest --type TYPE --predicate FILE "},
		{"missing type", []string{"--attestation", "spdxjson"}, exitDenied, "no attestation of this type signed by the authority"},
		{"invalid CEL", []string{"--attestation", "slsaprovenance1", "--condition", `predicate.runDetails.builder.id ==`}, exitUsage, "Syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append(append([]string{"verify", image}, ins...), tc.args...), &stdout, &stderr)
			out := stderr.String()
			if tc.wantCode == exitOK {
				out = stdout.String()
			}
			if code != tc.wantCode || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.wantCode, tc.want, &stdout, &stderr)
			}
		})
	}
}

// TestCheckAttestations: `signgate check` evaluates the attestations of
// --policy-dir's policies like the webhook.
func TestCheckAttestations(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	ci := registrytest.NewSigner(t)
	attested := func(tag, builder string) name.Digest {
		d := reg.PushImage(t, "acme/app", tag)
		reg.Sign(t, ci, d, registrytest.Classic)
		reg.Attest(t, ci, d, registrytest.Attestation{PredicateType: "https://slsa.dev/provenance/v1", Predicate: provenance(builder)})
		return d
	}
	good, evil := attested("good", "https://github.com/acme/build"), attested("evil", "https://github.com/evil/build")
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policies")
	if err := os.Mkdir(policyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := "          " + strings.ReplaceAll(strings.TrimSpace(string(ci.PublicPEM)), "\n", "\n          ")
	policy := "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: built}\nspec:\n" +
		"  images: [{glob: \"" + reg.Host + "/acme/**\"}]\n  authorities:\n    - name: ci\n      key:\n        data: |\n" + key + "\n" +
		"      attestations:\n        - name: provenance\n          predicateType: slsaprovenance1\n" +
		"          condition: predicate.runDetails.builder.id.startsWith('https://github.com/acme/')\n"
	manifests := filepath.Join(dir, "pods.yaml")
	for file, data := range map[string]string{
		filepath.Join(policyDir, "built.yaml"): policy,
		manifests:                              podYAML("good", good.String()) + "---\n" + podYAML("evil", evil.String()),
	} {
		if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"check", "-f", manifests, "--policy-dir", policyDir, "--insecure-registry", reg.Host, "--allow-host", reg.Host}, &stdout, &stderr)
	out := stdout.String()
	if code != exitDenied || !strings.Contains(out, "Pod default/good (") || !strings.Contains(out, "1 admitted, 1 denied") ||
		!strings.Contains(out, `attestation provenance (https://slsa.dev/provenance/v1) of authority ci: condition false; required by ClusterImagePolicy built`) {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, &stderr)
	}
}
