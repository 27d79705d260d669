package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// conformanceDir holds the sigstore-conformance bundle-verify cases
// (verifier/testdata/conformance/SOURCE).
const conformanceDir = "../../verifier/testdata/conformance"

const (
	conformanceIdentity = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
	conformanceIssuer   = "https://token.actions.githubusercontent.com"
)

// conformanceArgs maps one case directory to a verify-bundle command line
// the way the suite's CLI protocol does (conformance/run.sh).
func conformanceArgs(base, dir string) []string {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	art := filepath.Join(base, "a.txt")
	if p := filepath.Join(dir, "artifact"); exists(p) {
		art = p
	}
	tr := filepath.Join(conformanceDir, "public-good.json")
	if p := filepath.Join(dir, "trusted_root.json"); exists(p) {
		tr = p
	}
	args := []string{"verify-bundle", "--bundle", filepath.Join(dir, "bundle.sigstore.json")}
	if p := filepath.Join(dir, "key.pub"); exists(p) {
		args = append(args, "--key", p)
	} else {
		id, iss := conformanceIdentity, conformanceIssuer
		if b, err := os.ReadFile(filepath.Join(dir, "identity")); err == nil {
			id = string(b)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "issuer")); err == nil {
			iss = string(b)
		}
		args = append(args, "--certificate-identity", id, "--certificate-oidc-issuer", iss)
	}
	return append(args, "--trusted-root", tr, art)
}

// TestVerifyBundleConformance runs every sigstore-conformance bundle-verify
// case through the command: *_fail must exit 1 with a one-line reason, any
// other exit 0.
func TestVerifyBundleConformance(t *testing.T) {
	t.Parallel()
	base := filepath.Join(conformanceDir, "test", "assets", "bundle-verify")
	dirs, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var wrong, usage []string
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		n++
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), conformanceArgs(base, filepath.Join(base, d.Name())), &stdout, &stderr)
		// A case to reject exits 1, or 2 when an input other than the
		// bundle is invalid (managed-key-wrong-key_fail's key is not on its
		// curve, trust-root-tlog-missing-validity-start_fail's trusted
		// root does not parse).
		fail := strings.HasSuffix(d.Name(), "_fail")
		if fail && (code == exitDenied || code == exitUsage) || !fail && code == exitOK {
			if code == exitUsage {
				usage = append(usage, d.Name())
			}
		} else {
			wrong = append(wrong, fmt.Sprintf("%s: exit %d: %s", d.Name(), code, strings.TrimSpace(stderr.String())))
			continue
		}
		if lines := strings.Count(stderr.String(), "\n"); code != exitOK && lines != 1 {
			wrong = append(wrong, d.Name()+": reason not one line: "+stderr.String())
		}
	}
	if n != 70 {
		t.Errorf("found %d cases, want 70", n)
	}
	t.Logf("%d of %d sigstore-conformance bundle-verify cases right; rejected as input errors (exit 2): %v", n-len(wrong), n, usage)
	if want := []string{"managed-key-wrong-key_fail", "trust-root-tlog-missing-validity-start_fail"}; strings.Join(usage, " ") != strings.Join(want, " ") {
		t.Errorf("exit 2 for %v, want only %v", usage, want)
	}
	if len(wrong) > 0 {
		t.Errorf("%d wrong:\n%s", len(wrong), strings.Join(wrong, "\n"))
	}
}

func TestVerifyBundleUsage(t *testing.T) {
	t.Parallel()
	base := filepath.Join(conformanceDir, "test", "assets", "bundle-verify")
	happy := filepath.Join(base, "happy-path-v0.3", "bundle.sigstore.json")
	pg := filepath.Join(conformanceDir, "public-good.json")
	a := filepath.Join(base, "a.txt")
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	keyless := []string{"--certificate-identity", conformanceIdentity, "--certificate-oidc-issuer", conformanceIssuer}
	for _, tt := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"file", append(append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", pg}, keyless...), a), exitOK, ""},
		{"digest", append(append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", pg}, keyless...), digest), exitOK, ""},
		{"wrong digest", append(append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", pg}, keyless...), "sha256:"+strings.Repeat("0", 64)), exitDenied, "not verified"},
		{"no trusted root", append(append([]string{"verify-bundle", "--bundle", happy}, keyless...), a), exitUsage, "no trusted root: pass --trusted-root FILE (signgate never fetches one)"},
		{"staging", append(append([]string{"verify-bundle", "--bundle", happy, "--staging", "--trusted-root", pg}, keyless...), a), exitUsage, "signgate never fetches one"},
		{"no signer", []string{"verify-bundle", "--bundle", happy, "--trusted-root", pg, a}, exitUsage, "no signer given"},
		{"issuer only", []string{"verify-bundle", "--bundle", happy, "--trusted-root", pg, "--certificate-oidc-issuer", conformanceIssuer, a}, exitUsage, "needs both"},
		{"key and identity", append(append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", pg, "--key", "k.pub"}, keyless...), a), exitUsage, "exclude each other"},
		{"no bundle", append(append([]string{"verify-bundle", "--trusted-root", pg}, keyless...), a), exitUsage, "no --bundle"},
		{"bad digest", append(append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", pg}, keyless...), "sha256:abc"), exitUsage, "64 hex digits"},
		{"no artifact", append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", pg}, keyless...), exitUsage, "want exactly one"},
		{"bad key", []string{"verify-bundle", "--bundle", happy, "--trusted-root", pg, "--key", a, a}, exitUsage, "PEM public key"},
		{"bad trusted root", append(append([]string{"verify-bundle", "--bundle", happy, "--trusted-root", a}, keyless...), a), exitUsage, "trusted root"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.contains) {
				t.Errorf("stderr %q, want it to mention %q", stderr.String(), tt.contains)
			}
			if code == exitOK && !strings.HasPrefix(stdout.String(), "verified: ") {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}
