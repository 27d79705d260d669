package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHelpGolden compares the help of every command with
// testdata/help/*.txt (go test -run HelpGolden -update rewrites them).
// Help goes to stdout and exits 0.
func TestHelpGolden(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "") // serve's --namespace default
	tests := []struct {
		file string
		args []string
	}{
		{"root.txt", []string{"--help"}},
		{"help-check.txt", []string{"help", "check"}},
		{"check.txt", []string{"check", "--help"}},
		{"audit.txt", []string{"audit", "--help"}},
		{"lint.txt", []string{"lint", "--help"}},
		{"convert.txt", []string{"convert", "--help"}},
		{"verify.txt", []string{"verify", "--help"}},
		{"verify-bundle.txt", []string{"verify-bundle", "--help"}},
		{"serve.txt", []string{"serve", "--help"}},
		{"uninstall-webhooks.txt", []string{"uninstall-webhooks", "--help"}},
		{"probe.txt", []string{"probe", "--help"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tt.args, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d, want 0; stderr: %s", code, &stderr)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", &stderr)
			}
			path := filepath.Join("testdata/help", tt.file)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run HelpGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
	// help check and check --help are the same text.
	a, _ := os.ReadFile("testdata/help/help-check.txt")
	b, _ := os.ReadFile("testdata/help/check.txt")
	if !bytes.Equal(a, b) {
		t.Error("signgate help check and signgate check --help differ")
	}
}

// TestExitCodes: help and version exit 0 on stdout; usage errors exit 2
// with one line of error and a pointer to --help on stderr. Exit 1 and 3
// are covered by TestCheckGolden, TestLintGolden and TestVerifyCmd.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // exact
	}{
		{name: "root --help", args: []string{"--help"}, wantStdout: "Available Commands:"},
		{name: "root -h", args: []string{"-h"}, wantStdout: "Available Commands:"},
		{name: "check -h", args: []string{"check", "-h"}, wantStdout: "signgate check -f FILE|DIR|- [flags]"},
		{name: "lint -h", args: []string{"lint", "-h"}, wantStdout: "signgate lint -f FILE|DIR|- [flags]"},
		{name: "verify --help", args: []string{"verify", "--help"}, wantStdout: "signgate verify IMAGE (--key FILE... | --certificate-identity"},
		{name: "serve --help", args: []string{"serve", "--help"}, wantStdout: "--tls-cert-file FILE"},
		{name: "version --help", args: []string{"version", "--help"}, wantStdout: "signgate version"},
		{name: "help verify", args: []string{"help", "verify"}, wantStdout: "signgate verify IMAGE (--key FILE... | --certificate-identity"},
		{name: "--version", args: []string{"--version"}, wantStdout: "signgate dev\n"},
		{name: "version", args: []string{"version"}, wantStdout: "signgate dev\n"},
		{name: "completion", args: []string{"completion", "bash"}, wantStdout: "bash completion"},
		{
			name: "no command", args: nil, wantCode: exitUsage,
		},
		{
			name: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage,
			wantStderr: "signgate: unknown command \"frobnicate\" for \"signgate\"\nRun 'signgate --help' for usage.\n",
		},
		{
			name: "unknown flag", args: []string{"check", "--frobnicate"}, wantCode: exitUsage,
			wantStderr: "signgate check: unknown flag: --frobnicate\nRun 'signgate check --help' for usage.\n",
		},
		{
			name: "unknown root flag", args: []string{"--frobnicate"}, wantCode: exitUsage,
			wantStderr: "signgate: unknown flag: --frobnicate\nRun 'signgate --help' for usage.\n",
		},
		{
			name: "single-dash long flag", args: []string{"serve", "-listen", ":8443"}, wantCode: exitUsage,
			wantStderr: "signgate serve: unknown shorthand flag: 'l' in -listen\nRun 'signgate serve --help' for usage.\n",
		},
		{
			name: "bad flag value", args: []string{"verify", "img", "--key", "k.pub", "--threshold", "two"}, wantCode: exitUsage,
			wantStderr: "signgate verify: invalid argument \"two\" for \"--threshold\" flag: strconv.ParseInt: parsing \"two\": invalid syntax\nRun 'signgate verify --help' for usage.\n",
		},
		{
			name: "bad duration", args: []string{"serve", "--shutdown-delay", "soon"}, wantCode: exitUsage,
			wantStderr: "signgate serve: invalid argument \"soon\" for \"--shutdown-delay\" flag: time: invalid duration \"soon\"\nRun 'signgate serve --help' for usage.\n",
		},
		{
			name: "--cluster with --policy-dir", args: []string{"check", "-f", "x.yaml", "--cluster", "--policy-dir", "p"}, wantCode: exitUsage,
			wantStderr: "signgate check: --cluster and --policy-dir both name where policies come from: pass one\nRun 'signgate check --help' for usage.\n",
		},
		{
			name: "--context without --cluster", args: []string{"check", "-f", "x.yaml", "--context", "prod"}, wantCode: exitUsage,
			wantStderr: "signgate check: --kubeconfig and --context need --cluster (check reads policies from files unless told to read the cluster)\nRun 'signgate check --help' for usage.\n",
		},
		{
			name: "missing -f", args: []string{"check"}, wantCode: exitUsage,
			wantStderr: "signgate check: -f is required (a file, a directory or - for stdin)\nRun 'signgate check --help' for usage.\n",
		},
		{
			name: "missing IMAGE", args: []string{"verify", "--key", "k.pub"}, wantCode: exitUsage,
			wantStderr: "signgate verify: want exactly one IMAGE, got 0\nRun 'signgate verify --help' for usage.\n",
		},
		{
			name: "no authority", args: []string{"verify", "img"}, wantCode: exitUsage,
			wantStderr: "signgate verify: no authority given: pass --key with the cosign public key (cosign.pub) the image must be signed with, or the keyless signer with --certificate-identity[-regexp], --certificate-oidc-issuer[-regexp] and --trusted-root\nRun 'signgate verify --help' for usage.\n",
		},
		{
			name: "missing TLS pair", args: []string{"serve"}, wantCode: exitUsage,
			wantStderr: "signgate serve: --tls-cert-file and --tls-key-file are required\nRun 'signgate serve --help' for usage.\n",
		},
		{
			name: "probe without --ca-file", args: []string{"probe", "--url", "https://signgate.signgate-system.svc:443"}, wantCode: exitUsage,
			wantStderr: "signgate probe: --ca-file is required: the PEM CA that signs the gate's serving certificate (TLS verification cannot be turned off)\nRun 'signgate probe --help' for usage.\n",
		},
		{
			name: "stray argument", args: []string{"version", "now"}, wantCode: exitUsage,
			wantStderr: "signgate version: unexpected argument \"now\" (version takes no arguments)\nRun 'signgate version --help' for usage.\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.wantStdout, &stdout)
			}
			switch {
			case tt.wantCode == exitOK && stderr.Len() > 0:
				t.Errorf("stderr: %s", &stderr)
			case tt.wantCode != exitOK && stdout.Len() > 0:
				t.Errorf("stdout: %s", &stdout)
			case tt.wantStderr != "" && stderr.String() != tt.wantStderr:
				t.Errorf("stderr:\n%q\nwant:\n%q", &stderr, tt.wantStderr)
			}
		})
	}
}

// TestServeKubeconfig: without --kubeconfig, serve loads $KUBECONFIG
// (client-go's default loading rules); --kubeconfig wins over it.
func TestServeKubeconfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, server string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + server + `"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
		if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fromEnv := write("env.yaml", "https://127.0.0.1:1")
	fromFlag := write("flag.yaml", "https://127.0.0.1:2")
	t.Setenv("KUBECONFIG", fromEnv)

	rc, err := restConfig("", "")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://127.0.0.1:1" {
		t.Errorf("no --kubeconfig: host %q, want $KUBECONFIG's https://127.0.0.1:1", rc.Host)
	}
	rc, err = restConfig(fromFlag, "")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://127.0.0.1:2" {
		t.Errorf("--kubeconfig: host %q, want the flag's https://127.0.0.1:2", rc.Host)
	}
	if _, err := restConfig(filepath.Join(dir, "missing.yaml"), ""); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing --kubeconfig file: err %v, want it to name the file", err)
	}

	// Neither a kubeconfig nor a pod: the error says what to do.
	t.Setenv("KUBECONFIG", filepath.Join(dir, "none.yaml"))
	t.Setenv("HOME", dir)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := restConfig("", ""); err == nil || !strings.Contains(err.Error(), "--kubeconfig or --policy-dir") {
		t.Errorf("no configuration: err %v, want a hint at --kubeconfig or --policy-dir", err)
	}
}
