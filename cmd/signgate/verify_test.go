package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
)

func TestVerifyCmd(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	dir := t.TempDir()
	alice, bob := registrytest.NewSigner(t), registrytest.NewSigner(t)
	aliceKey, bobKey := alice.WritePublicKey(t, dir), bob.WritePublicKey(t, dir)
	signed := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, alice, signed, registrytest.Classic)
	bundled := reg.PushImage(t, "team/app", "v2")
	reg.Sign(t, alice, bundled, registrytest.Bundle)
	reg.PushImage(t, "team/app", "unsigned")
	down := registrytest.New(t)
	down.SetFault(registrytest.FailN(503, -1))

	image := reg.Host + "/team/app"
	trustedRoot := "../../verifier/testdata/conformance/test/assets/bundle-verify/rekor2-timestamp-without-embedded-cert/trusted_root.json"
	ins := []string{"--insecure-registry", reg.Host, "--allow-host", reg.Host}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string   // exact
		wantStderr []string // substrings
	}{
		{
			name:       "classic signature",
			args:       append([]string{image + ":v1", "--key", aliceKey}, ins...),
			wantCode:   exitOK,
			wantStdout: image + ":v1@" + signed.DigestStr() + "\nverified by: " + aliceKey + "\n",
		},
		{
			name:       "bundle, flags first",
			args:       append(append([]string{"--key", bobKey, "--key", aliceKey}, ins...), image+":v2"),
			wantCode:   exitOK,
			wantStdout: image + ":v2@" + bundled.DigestStr() + "\nverified by: " + aliceKey + "\n",
		},
		{
			name:       "tag and digest keeps the tag",
			args:       append([]string{image + ":v1@" + signed.DigestStr(), "--key", aliceKey}, ins...),
			wantCode:   exitOK,
			wantStdout: image + ":v1@" + signed.DigestStr() + "\nverified by: " + aliceKey + "\n",
		},
		{
			name:       "wrong key",
			args:       append([]string{image + ":v1", "--key", bobKey}, ins...),
			wantCode:   exitDenied,
			wantStderr: []string{"NOT VERIFIED", "no valid signature from a trusted key", "To fix: sign it with `cosign sign --key cosign.key"},
		},
		{
			name:       "unsigned",
			args:       append([]string{image + ":unsigned", "--key", aliceKey}, ins...),
			wantCode:   exitDenied,
			wantStderr: []string{"no signatures found"},
		},
		{
			name:       "threshold not met",
			args:       append([]string{image + ":v1", "--key", aliceKey, "--key", bobKey, "--threshold", "2"}, ins...),
			wantCode:   exitDenied,
			wantStderr: []string{"only 1 of the 2 required authorities verified"},
		},
		{
			name:       "tag not found",
			args:       append([]string{image + ":nope", "--key", aliceKey}, ins...),
			wantCode:   exitDenied,
			wantStderr: []string{"tag not found", "To fix: check the image name"},
		},
		{
			name:       "registry down",
			args:       []string{down.Host + "/team/app:v1", "--key", aliceKey, "--insecure-registry", down.Host, "--allow-host", down.Host},
			wantCode:   exitUndecided,
			wantStderr: []string{"undecided", "retry"},
		},
		{
			name:       "loopback registry not allowed",
			args:       []string{image + ":v1", "--key", aliceKey},
			wantCode:   exitUsage,
			wantStderr: []string{"signgate verify: registry " + reg.Host + " is blocked by the network guard (loopback); pass --allow-host " + reg.Host + "\n"},
		},
		{
			name:       "loopback registry not allowed, digest",
			args:       []string{image + "@" + signed.DigestStr(), "--key", aliceKey},
			wantCode:   exitUsage,
			wantStderr: []string{"signgate verify: registry " + reg.Host + " is blocked by the network guard (loopback); pass --allow-host " + reg.Host + "\n"},
		},
		{
			name:       "plain HTTP not allowed, digest",
			args:       []string{image + "@" + signed.DigestStr(), "--key", aliceKey, "--allow-host", reg.Host},
			wantCode:   exitUsage,
			wantStderr: []string{"signgate verify: refused to use registry " + reg.Host + ": it answered in plain HTTP; pass --insecure-registry " + reg.Host + " if that is intended\n"},
		},
		{name: "no image", args: []string{"--key", aliceKey}, wantCode: exitUsage, wantStderr: []string{"want exactly one IMAGE"}},
		{name: "no key", args: []string{image + ":v1"}, wantCode: exitUsage, wantStderr: []string{"no authority given: pass --key"}},
		{name: "keyless without trusted root", args: []string{image + ":v1", "--certificate-identity", "ci@example.com", "--certificate-oidc-issuer", "https://issuer.example"}, wantCode: exitUsage,
			wantStderr: []string{"keyless: no trusted root: pass --trusted-root FILE"}},
		{name: "keyless without issuer", args: []string{image + ":v1", "--certificate-identity", "ci@example.com", "--trusted-root", trustedRoot}, wantCode: exitUsage,
			wantStderr: []string{"keyless: set issuer or issuerRegExp"}},
		{name: "keyless identity twice", args: []string{image + ":v1", "--certificate-identity", "a", "--certificate-identity-regexp", "a.*", "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", trustedRoot}, wantCode: exitUsage,
			wantStderr: []string{"keyless: set subject or subjectRegExp, not both"}},
		{name: "keyless bad regexp", args: []string{image + ":v1", "--certificate-identity-regexp", "^(a", "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", trustedRoot}, wantCode: exitUsage,
			wantStderr: []string{`subjectRegExp "^(a": missing closing )`}},
		{name: "keyless bad trusted root", args: []string{image + ":v1", "--certificate-identity", "a", "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", aliceKey}, wantCode: exitUsage,
			wantStderr: []string{"--trusted-root " + aliceKey + ": parse trusted root"}},
		{name: "threshold counts the keyless identity", args: []string{image + ":v1", "--key", aliceKey, "--threshold", "3", "--certificate-identity", "a", "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", trustedRoot}, wantCode: exitUsage,
			wantStderr: []string{"--threshold 3: must be between 1 and the number of authorities (2"}},
		{name: "bad threshold", args: []string{image + ":v1", "--key", aliceKey, "--threshold", "2"}, wantCode: exitUsage, wantStderr: []string{"--threshold 2"}},
		{name: "missing key file", args: []string{image + ":v1", "--key", dir + "/nope.pub"}, wantCode: exitUsage, wantStderr: []string{"read key"}},
		{name: "attestation condition does not parse", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "slsaprovenance1", "--condition", "predicate.x =="}, wantCode: exitUsage,
			wantStderr: []string{"--attestation slsaprovenance1: condition: ERROR: <input>:1:"}},
		{name: "attestation condition position", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "vuln", "--condition", "true && nope"}, wantCode: exitUsage,
			wantStderr: []string{"--attestation vuln: condition: ERROR: <input>:1:9: undeclared reference to 'nope'"}},
		{name: "attestation message does not parse", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "spdxjson", "--condition", "true", "--message", "'a' +"}, wantCode: exitUsage,
			wantStderr: []string{"--attestation spdxjson: message: ERROR: <input>:1:"}},
		{name: "condition without attestation", args: []string{image + ":v1", "--key", aliceKey, "--condition", "true"}, wantCode: exitUsage,
			wantStderr: []string{"--condition applies to the --attestation before it: give --attestation TYPE first"}},
		{name: "condition before attestation", args: []string{image + ":v1", "--key", aliceKey, "--condition", "true", "--attestation", "spdxjson"}, wantCode: exitUsage,
			wantStderr: []string{"--condition applies to the --attestation before it"}},
		{name: "two conditions for one attestation", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "spdxjson", "--condition", "true", "--condition", "false"}, wantCode: exitUsage,
			wantStderr: []string{"--attestation spdxjson has two --condition"}},
		{name: "message without condition", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "spdxjson", "--message", "'a'"}, wantCode: exitUsage,
			wantStderr: []string{"--attestation spdxjson: --message needs a --condition"}},
		{name: "unknown short predicate type", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "slsa"}, wantCode: exitUsage,
			wantStderr: []string{`--attestation slsa: predicateType "slsa" is neither a URI nor one of cosign's short names`}},
		{name: "attestation twice", args: []string{image + ":v1", "--key", aliceKey, "--attestation", "spdxjson", "--attestation", "spdxjson"}, wantCode: exitUsage,
			wantStderr: []string{"--attestation spdxjson given twice"}},
		{name: "bad image", args: []string{"Bad Image", "--key", aliceKey}, wantCode: exitUsage, wantStderr: []string{"parse image reference"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"verify"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
			}
			if tc.wantStdout != "" && stdout.String() != tc.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, tc.wantStdout)
			}
			for _, s := range tc.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr does not contain %q:\n%s", s, &stderr)
				}
			}
		})
	}
}

// TestVerifyKeyless: `signgate verify` with cosign's keyless flags and a
// trusted root file, against bundles certified by a Sigstore made in the
// test.
func TestVerifyKeyless(t *testing.T) {
	t.Parallel()
	const (
		issuer   = "https://token.actions.githubusercontent.com"
		workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
		release  = `^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*$`
	)
	reg := registrytest.New(t)
	sigstore, other := registrytest.NewSigstore(t), registrytest.NewSigstore(t)
	dir := t.TempDir()
	trustedRoot, otherRoot := filepath.Join(dir, "trusted_root.json"), filepath.Join(dir, "other_root.json")
	if err := os.WriteFile(trustedRoot, sigstore.TrustedRootJSON(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherRoot, other.TrustedRootJSON(t), 0o600); err != nil {
		t.Fatal(err)
	}
	release1 := reg.PushImage(t, "acme/app", "v1")
	reg.SignKeyless(t, sigstore, release1, workflow, issuer)
	evil := reg.PushImage(t, "acme/app", "evil")
	reg.SignKeyless(t, sigstore, evil, "https://github.com/acme/app.evil/.github/workflows/release.yml@refs/tags/v1.0.0", issuer)

	image := reg.Host + "/acme/app"
	ins := []string{"--insecure-registry", reg.Host, "--allow-host", reg.Host}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"exact identity", []string{image + ":v1", "--certificate-identity", workflow, "--certificate-oidc-issuer", issuer, "--trusted-root", trustedRoot}, exitOK,
			image + ":v1@" + release1.DigestStr() + "\nverified by: keyless\n", ""},
		{"anchored regexp", []string{image + ":v1", "--certificate-identity-regexp", release, "--certificate-oidc-issuer", issuer, "--trusted-root", trustedRoot}, exitOK,
			image + ":v1@" + release1.DigestStr() + "\nverified by: keyless\n", ""},
		{"another repository does not match the anchored regexp", []string{image + ":evil", "--certificate-identity-regexp", release, "--certificate-oidc-issuer", issuer, "--trusted-root", trustedRoot}, exitDenied,
			"", `certificate subject "https://github.com/acme/app.evil/`},
		{"another issuer", []string{image + ":v1", "--certificate-identity", workflow, "--certificate-oidc-issuer", "https://gitlab.com", "--trusted-root", trustedRoot}, exitDenied,
			"", `matches none of: subject "` + workflow + `" from issuer "https://gitlab.com"`},
		{"untrusted CA", []string{image + ":v1", "--certificate-identity", workflow, "--certificate-oidc-issuer", issuer, "--trusted-root", otherRoot}, exitDenied,
			"", "certificate not issued by a Fulcio CA of TrustRoot " + otherRoot},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append(append([]string{"verify"}, tc.args...), ins...), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
			}
			if stdout.String() != tc.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantStderr, &stderr)
			}
		})
	}
}
