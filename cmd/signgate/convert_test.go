package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const convertFixtures = "../../internal/convert/testdata"

// TestConvertExitCodes: 0 when everything converted (and the output
// passes `signgate lint`), 1 with the list of what was not, 2 for input
// that cannot be read, before anything is written.
func TestConvertExitCodes(t *testing.T) {
	t.Parallel()
	full := filepath.Join(convertFixtures, "policy-controller/signed-by-github-actions.yaml")
	partial := filepath.Join(convertFixtures, "kyverno/keyed-secret.yaml")

	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"convert", "-f", full}, &stdout, &stderr); code != exitOK {
		t.Fatalf("fully convertible: exit %d, want 0; stderr: %s", code, &stderr)
	}
	if !strings.Contains(stdout.String(), "kind: ClusterImagePolicy") || !strings.Contains(stderr.String(), "1 input object read: 1 object written; 0 fields not converted") {
		t.Errorf("stdout:\n%s\nstderr: %s", &stdout, &stderr)
	}
	lintConverted(t, stdout.Bytes())

	stdout.Reset()
	stderr.Reset()
	if code := run(t.Context(), []string{"convert", "-f", partial}, &stdout, &stderr); code != exitDenied {
		t.Fatalf("partly convertible: exit %d, want 1; stderr: %s", code, &stderr)
	}
	// Each problem on its own line, FILE:LINE: KIND NAME: FIELD: REASON.
	if !strings.Contains(stderr.String(), partial+":") || !strings.Contains(stderr.String(), "keys.secret") {
		t.Errorf("stderr does not list the problem at its field:\n%s", &stderr)
	}
	lintConverted(t, stdout.Bytes())

	for name, args := range map[string][]string{
		"missing file": {"convert", "-f", "testdata/nope.yaml"},
		"bad YAML":     {"convert", "-f", writeTemp(t, "apiVersion: v1\nkind: [\n")},
		"no -f":        {"convert"},
		"bad -o":       {"convert", "-f", full, "-o", "xml"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(t.Context(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%s: exit %d, want 2; stderr: %s", name, code, &stderr)
		}
		if stdout.Len() > 0 {
			t.Errorf("%s: wrote %q", name, &stdout)
		}
	}
}

// TestConvertJSON: -o json holds the objects, the problems per field and
// the skipped documents.
func TestConvertJSON(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	in := writeTemp(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
	args := []string{"convert", "-f", filepath.Join(convertFixtures, "kyverno/keyed-secret.yaml"), "-f", in, "-o", "json", "--public-good-trust-root", "sigstore"}
	if code := run(t.Context(), args, &stdout, &stderr); code != exitDenied {
		t.Fatalf("exit %d, want 1; stderr: %s", code, &stderr)
	}
	var rep struct {
		Objects  []map[string]any `json:"objects"`
		Problems []struct {
			File, Kind, Name, Field, Reason string
			Line                            int
		} `json:"problems"`
		Skipped []struct{ Kind, Name string } `json:"skipped"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, &stdout)
	}
	if len(rep.Objects) == 0 || len(rep.Problems) == 0 || rep.Problems[0].Field == "" || rep.Problems[0].Line == 0 {
		t.Errorf("report = %+v", rep)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Kind != "Deployment" {
		t.Errorf("skipped = %+v", rep.Skipped)
	}
}

// lintConverted runs `signgate lint` on converted output: it must pass.
func lintConverted(t *testing.T, out []byte) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runLint(lintOptions{Files: []string{"-"}, Output: "text"}, bytes.NewReader(out), &stdout, &stderr); code != exitOK {
		t.Errorf("converted output does not lint (exit %d):\n%s\n%s", code, &stdout, out)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConvertPublicGoodTrustRoot: keyless authorities name the TrustRoot
// given for Sigstore's public-good instance.
func TestConvertPublicGoodTrustRoot(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	args := []string{"convert", "-f", filepath.Join(convertFixtures, "policy-controller/signed-by-github-actions.yaml"), "--public-good-trust-root", "sigstore-prod"}
	if code := run(t.Context(), args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d; stderr: %s", code, &stderr)
	}
	if !strings.Contains(stdout.String(), "trustRoot: sigstore-prod") {
		t.Errorf("output does not name the TrustRoot:\n%s", &stdout)
	}
}
