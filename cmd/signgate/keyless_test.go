package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/registrytest"
)

// TestServeKeyless runs `signgate serve` with keyless policies from
// --policy-dir: TrustRoots with trusted roots of Sigstores made in the
// test, and ImagePolicies trusting a release workflow. Each denial names
// what did not match.
func TestServeKeyless(t *testing.T) {
	const (
		ghIssuer = "https://token.actions.githubusercontent.com"
		release  = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
		nightly  = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main"
		evil     = "https://github.com/acme/app.evil/.github/workflows/release.yml@refs/tags/v1.0.0"
	)
	reg := registrytest.New(t)
	corp, other := registrytest.NewSigstore(t), registrytest.NewSigstore(t)
	released := reg.PushImage(t, "acme/app", "v1")
	reg.SignKeyless(t, corp, released, release, ghIssuer)
	fromNightly := reg.PushImage(t, "acme/app", "nightly")
	reg.SignKeyless(t, corp, fromNightly, nightly, ghIssuer)
	fromEvil := reg.PushImage(t, "acme/app", "evil")
	reg.SignKeyless(t, corp, fromEvil, evil, ghIssuer)
	otherCA := reg.PushImage(t, "acme/app", "other-ca")
	reg.SignKeyless(t, other, otherCA, release, ghIssuer)

	trustRoot := func(name string, s *registrytest.Sigstore) string {
		inline, _ := json.Marshal(string(s.TrustedRootJSON(t)))
		return "apiVersion: signgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: " + name + "}\nspec:\n  trustedRoot:\n    inline: " + string(inline) + "\n"
	}
	keyless := func(root, issuer string) string {
		return "  authorities:\n    - name: release\n      keyless:\n        trustRoot: " + root + "\n        identities:\n" +
			"          - issuer: " + issuer + "\n            subjectRegExp: '^https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*$'\n"
	}
	files := map[string]string{
		"corp.yaml":     trustRoot("corp", corp),
		"other.yaml":    trustRoot("other", other),
		"release.yaml":  imagePolicy("ns-release", reg.Host+"/acme/**", keyless("corp", ghIssuer)),
		"gitlab.yaml":   imagePolicy("ns-gitlab", reg.Host+"/acme/**", keyless("corp", "https://gitlab.com")),
		"missing.yaml":  imagePolicy("ns-missing", reg.Host+"/acme/**", keyless("missing", ghIssuer)),
		"other-ca.yaml": imagePolicy("ns-other-ca", reg.Host+"/acme/**", keyless("other", ghIssuer)),
	}
	base := servePolicies(t, reg, "unmatchedImages: deny\npolicies: {namespacePoliciesCoverImages: true}\n", files)

	tests := []struct {
		name      string
		namespace string
		image     string
		want      string // substring of the denial; "" = allowed
	}{
		{"the release workflow", "ns-release", released.String(), ""},
		{"another workflow", "ns-release", fromNightly.String(),
			`no valid signature from a trusted identity: certificate subject "` + nightly + `" from issuer "` + ghIssuer + `" matches none of: subject ~ "^https://github\\.com/acme/app/`},
		{"the advice names identities, not keys", "ns-release", fromNightly.String(), "; sign it as an identity trusted in namespace ns-release"},
		{"a repository that starts like the trusted one", "ns-release", fromEvil.String(), `certificate subject "` + evil + `"`},
		{"another issuer", "ns-gitlab", released.String(), `matches none of: subject ~ "^https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*$" from issuer "https://gitlab.com"`},
		{"an untrusted CA", "ns-other-ca", released.String(), "certificate not issued by a Fulcio CA of TrustRoot other"},
		{"signed by the other CA, trusted by it", "ns-other-ca", otherCA.String(), ""},
		{"a missing TrustRoot", "ns-missing", released.String(), `authority "release": TrustRoot "missing": not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { validatePod(t, base, tc.namespace, tc.image, tc.want) })
	}
}

// TestCheckKeyless: `signgate check --trusted-root NAME=FILE` gives the
// policies of --policy-dir their TrustRoot; without it they are invalid
// and say which TrustRoot is missing.
func TestCheckKeyless(t *testing.T) {
	t.Parallel()
	const (
		ghIssuer = "https://token.actions.githubusercontent.com"
		release  = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
	)
	reg := registrytest.New(t)
	corp := registrytest.NewSigstore(t)
	signed := reg.PushImage(t, "acme/app", "v1")
	reg.SignKeyless(t, corp, signed, release, ghIssuer)

	dir := t.TempDir()
	policyDir, rootFile, manifest := filepath.Join(dir, "policies"), filepath.Join(dir, "trusted_root.json"), filepath.Join(dir, "pod.yaml")
	if err := os.Mkdir(policyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	policy := imagePolicy("default", reg.Host+"/acme/**", "  authorities:\n    - name: release\n      keyless:\n        trustRoot: corp\n        identities:\n"+
		"          - {issuer: '"+ghIssuer+"', subject: '"+release+"'}\n")
	for file, data := range map[string][]byte{
		filepath.Join(policyDir, "release.yaml"): []byte(policy),
		rootFile:                                 corp.TrustedRootJSON(t),
		manifest:                                 []byte(podYAML("web", signed.String())),
	} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\npolicies: {namespacePoliciesCoverImages: true}\n"+
		"registry: {insecureRegistries: [\""+reg.Host+"\"], allowedHosts: [\""+reg.Host+"\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"check", "-f", manifest, "--policy-dir", policyDir, "--config", cfg}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOutput string // substring of stdout, or of stderr for exit 2
	}{
		{"with the trusted root", []string{"--trusted-root", "corp=" + rootFile}, exitOK, "ADMITTED"},
		{"without it", nil, exitDenied, `authority "release": TrustRoot "corp": not found`},
		{"another name", []string{"--trusted-root", "other=" + rootFile}, exitDenied, `TrustRoot "corp": not found`},
		{"no name", []string{"--trusted-root", rootFile}, exitUsage, "want NAME=FILE"},
		{"missing file", []string{"--trusted-root", "corp=" + filepath.Join(dir, "nope.json")}, exitUsage, "--trusted-root corp: open "},
		{"with --cluster", []string{"--trusted-root", "corp=" + rootFile, "--cluster", "--policy-dir", ""}, exitUsage, "--trusted-root and --cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(append([]string{}, base...), tc.args...), &stdout, &stderr)
			out := stdout.String()
			if tc.wantCode == exitUsage {
				out = stderr.String()
			}
			if code != tc.wantCode || !strings.Contains(out, tc.wantOutput) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.wantCode, tc.wantOutput, &stdout, &stderr)
			}
		})
	}
}

// TestServeKeylessClassic runs `signgate serve` with a keyless
// ClusterImagePolicy over classic .sig keyless signatures: the rejected
// cases of the verifier's tests, each denied naming what failed.
func TestServeKeylessClassic(t *testing.T) {
	const (
		ghIssuer = "https://token.actions.githubusercontent.com"
		release  = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
	)
	reg := registrytest.New(t)
	corp := registrytest.NewSigstore(t)
	sign := func(tag string, opts ...registrytest.ClassicOption) string {
		d := reg.PushImage(t, "acme/app", tag)
		reg.SignKeylessClassic(t, corp, d, release, ghIssuer, opts...)
		return d.String()
	}
	good := sign("good")
	expired := sign("expired", registrytest.ClassicLoggedAt(time.Now().Add(time.Hour)), registrytest.ClassicNoTimestamp())
	foreignLog := sign("foreign-log", registrytest.ClassicForeignRekorBundle())
	noTime := sign("no-time", registrytest.ClassicNoRekorBundle(), registrytest.ClassicNoTimestamp())
	publicKey := sign("public-key", registrytest.ClassicCertificatePEM(registrytest.NewSigner(t).PublicPEM))

	inline, _ := json.Marshal(string(corp.TrustedRootJSON(t)))
	files := map[string]string{
		"corp.yaml": "apiVersion: signgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: corp}\nspec:\n  trustedRoot:\n    inline: " + string(inline) + "\n",
		"release.yaml": "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: release}\nspec:\n" +
			"  images: [{glob: \"" + reg.Host + "/acme/**\"}]\n  authorities:\n    - name: release\n      keyless:\n        trustRoot: corp\n" +
			"        identities: [{issuer: '" + ghIssuer + "', subject: '" + release + "'}]\n",
	}
	base := servePolicies(t, reg, "", files)

	tests := []struct {
		name  string
		image string
		want  string // substring of the denial; "" = allowed
	}{
		{"the release workflow, classic layout", good, ""},
		{"leaf expired at the signing time", expired, "no verified signing time"},
		{"log entry of another signature", foreignLog, "no transparency log entry verified against TrustRoot corp"},
		{"no signing time", noTime, "the classic signature carries no signing time"},
		{"a public key in the certificate annotation", publicKey, "the classic signature's certificate annotation holds a public key, not a certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want != "" {
				want = "no valid signature from a trusted identity: " + want
			}
			validatePod(t, base, "team-a", tc.image, want)
		})
	}
}
