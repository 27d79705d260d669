package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLintGolden runs whole lint invocations on testdata/lint and compares
// stdout with testdata/lint/*.golden (go test -run LintGolden -update
// rewrites them), and the exit code and summary line exactly.
func TestLintGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden     string
		args       []string
		wantCode   int
		wantStderr string
	}{
		// Keyless with a TrustRoot not in the file, a key from a Secret, a
		// Namespace: nothing to report.
		{"valid.golden", []string{"-f", "testdata/lint/valid.yaml"}, exitOK, "1 file checked: no problems\n"},
		// An unknown field at its line; a glob, a key, a CEL condition, a
		// regular expression and a threshold of one policy; a TrustRoot.
		{"problems.golden", []string{"-f", "testdata/lint/problems.yaml"}, exitDenied, "1 file checked: 7 problems in 1 file\n"},
		{"problems.json.golden", []string{"-f", "testdata/lint/problems.yaml", "-o", "json"}, exitDenied, "1 file checked: 7 problems in 1 file\n"},
		// The problem is in the third document: its line, not the file's first.
		{"multi.golden", []string{"-f", "testdata/lint/multi.yaml"}, exitDenied, "1 file checked: 1 problem in 1 file\n"},
		// A directory: its YAML files in lexical order, the goldens not read.
		{"dir.golden", []string{"-f", "testdata/lint"}, exitDenied, "3 files checked: 8 problems in 2 files\n"},
		{"valid.json.golden", []string{"-f", "testdata/lint/valid.yaml", "--output=json"}, exitOK, "1 file checked: no problems\n"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"lint"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, &stderr)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", &stderr, tt.wantStderr)
			}
			if strings.Contains(tt.golden, ".json") {
				var ps []lintProblem
				if err := json.Unmarshal(stdout.Bytes(), &ps); err != nil || ps == nil {
					t.Errorf("output is not a JSON array of problems: %v\n%s", err, &stdout)
				}
			}
			path := filepath.Join("testdata/lint", tt.golden)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run LintGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestLintStdin: "-" reads stdin, named <stdin> in the problems.
func TestLintStdin(t *testing.T) {
	t.Parallel()
	in := `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: x}
spec:
  images: [{glob: "a/**"}]
  static: {action: pass, reason: none}
`
	var stdout, stderr bytes.Buffer
	code := runLint(lintOptions{Files: []string{"-"}, Output: "text"}, strings.NewReader(in), &stdout, &stderr)
	if code != exitDenied {
		t.Errorf("exit %d, want %d", code, exitDenied)
	}
	want := "<stdin>:6: ClusterImagePolicy x: decode: error unmarshaling JSON: while decoding JSON: json: unknown field \"reason\"\n"
	if stdout.String() != want {
		t.Errorf("stdout = %q, want %q", &stdout, want)
	}
}

// TestLintErrors: usage and input errors exit 2 with one line on stderr
// and nothing on stdout.
func TestLintErrors(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "README.md"), []byte("no policies\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStderr string // exact
	}{
		{"no -f", nil, "signgate lint: -f is required (a file, a directory or - for stdin)\nRun 'signgate lint --help' for usage.\n"},
		{"bad output", []string{"-f", "testdata/lint/valid.yaml", "-o", "yaml"}, "signgate lint: -o \"yaml\": want text or json\nRun 'signgate lint --help' for usage.\n"},
		{"stray argument", []string{"testdata/lint/valid.yaml"}, "signgate lint: unexpected argument \"testdata/lint/valid.yaml\" (policy files are given with -f)\nRun 'signgate lint --help' for usage.\n"},
		{"missing file", []string{"-f", "testdata/lint/valid.yaml", "-f", "testdata/lint/nope.yaml"}, "signgate lint: testdata/lint/nope.yaml: no such file or directory\n"},
		{"no YAML in directory", []string{"-f", empty}, "signgate lint: " + empty + ": no *.yaml, *.yml or *.json files in this directory: nothing to lint\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"lint"}, tt.args...), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", &stdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", &stderr, tt.wantStderr)
			}
		})
	}
}
