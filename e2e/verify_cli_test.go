//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/signgate/signgate/e2e/harness"
)

// `signgate verify` against the real registry, with images signed by the
// real cosign CLI: exit 0 and the digest for the right key (both layouts),
// exit 1 for the wrong key.
func TestVerifyCLI(t *testing.T) {
	t.Parallel()
	reg := env.Registry()
	layouts := []harness.Layout{harness.Classic}
	if env.Cosign.SupportsBundle(testContext(t)) {
		layouts = append(layouts, harness.Bundle)
	}
	for _, layout := range layouts {
		t.Run(string(layout), func(t *testing.T) {
			t.Parallel()
			r := repo(t, "app")
			d := pushSigned(t, reg, keyA, layout, r)
			tagRef := reg.Repo(r) + ":v1"
			tests := []struct {
				name     string
				key      harness.KeyPair
				wantCode int
			}{
				{name: "right key", key: keyA, wantCode: 0},
				{name: "wrong key", key: keyB, wantCode: 1},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					// Flags before the image: works whichever flag parser.
					stdout, stderr, code := signgate(t, "verify", "--key", tt.key.PublicKey, "--insecure-registry", reg.Host, "--allow-host", reg.Host, tagRef)
					t.Logf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
					if code != tt.wantCode {
						t.Fatalf("signgate verify %s with %s: exit %d, want %d", tagRef, tt.key.Name, code, tt.wantCode)
					}
					if tt.wantCode == 0 && !strings.Contains(stdout, d.DigestStr()) {
						t.Errorf("stdout %q does not contain the digest %s", stdout, d.DigestStr())
					}
				})
			}
		})
	}
}

// signgate runs bin/signgate with args and returns its output and exit code.
func signgate(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(testContext(t), env.Bin.Signgate, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run signgate %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}
