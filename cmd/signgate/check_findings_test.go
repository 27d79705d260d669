package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckFindings: `check -o json` gives every line of a denied object
// as a structured finding too, with the reason code and what it is about,
// each once, from both webhooks.
func TestCheckFindings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		manifest string
		want     []finding
	}{
		{
			name:     "unsigned",
			manifest: podYAML("web", "REGISTRY/team-a/unsigned:1.0"),
			want: []finding{{
				Severity: "deny", Code: "not-verified", Field: "spec.containers[0].image",
				Image:  "REGISTRY/team-a/unsigned:1.0@sha256:<team-a/unsigned>",
				Policy: "ClusterImagePolicy team-a-ci", Authorities: []string{"team-a-ci"},
				Message: `spec.containers[0].image "REGISTRY/team-a/unsigned:1.0@sha256:<team-a/unsigned>": no signatures found for ClusterImagePolicy team-a-ci (need 1 of: team-a-ci); sign it with a key trusted in namespace team-a`,
			}},
		},
		{
			// /mutate warns it cannot pin the tag, /validate denies it unpinned.
			name:     "missing tag",
			manifest: podYAML("web", "REGISTRY/team-a/web:9.9"),
			want: []finding{
				{
					Severity: "warn", Code: "pin-failed", Field: "spec.containers[0].image", Image: "REGISTRY/team-a/web:9.9",
					Message: `spec.containers[0].image "REGISTRY/team-a/web:9.9": cannot pin to a digest: not found in registry REGISTRY; the validating webhook will deny it unpinned`,
				},
				{
					Severity: "deny", Code: "image-unpinned", Field: "spec.containers[0].image", Image: "REGISTRY/team-a/web:9.9",
					Message: `spec.containers[0].image "REGISTRY/team-a/web:9.9": must be pinned by digest; write it as repo:tag@sha256:<digest> or make sure signgate's mutating webhook is installed`,
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newCheckEnv(t)
			file := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(file, []byte(e.expand.Replace(tt.manifest)), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := e.check(t, "-f", file, "-n", "team-a", "-o", "json")
			if code != exitDenied {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, exitDenied, stderr)
			}
			var r report
			if err := json.Unmarshal([]byte(stdout), &r); err != nil || len(r.Objects) != 1 {
				t.Fatalf("objects %v, err %v; output:\n%s", r.Objects, err, stdout)
			}
			o := r.Objects[0]
			if diff := cmp.Diff(tt.want, o.Findings); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			checkFindingsAreLines(t, o)
		})
	}
}

// checkFindingsAreLines: messages, warnings, audit lines and findings are
// each unique, and the findings are exactly the lines.
func checkFindingsAreLines(t *testing.T, o objectResult) {
	t.Helper()
	var messages, warnings, audit []string
	for _, f := range o.Findings {
		switch f.Severity {
		case "deny", "retry":
			messages = append(messages, f.Message)
		case "warn":
			warnings = append(warnings, f.Message)
		case "audit":
			audit = append(audit, f.AuditKey+"="+f.Message)
		default:
			t.Errorf("finding with severity %q: %+v", f.Severity, f)
		}
	}
	for _, l := range []struct {
		name       string
		got, lines []string
	}{{"messages", o.Messages, messages}, {"warnings", o.Warnings, warnings}, {"audit", o.Audit, audit}} {
		if len(slices.Compact(slices.Sorted(slices.Values(l.got)))) != len(l.got) {
			t.Errorf("%s has duplicates: %q", l.name, l.got)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(l.lines)))) != len(l.lines) {
			t.Errorf("findings of %s have duplicates: %q", l.name, l.lines)
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(l.got)), slices.Sorted(slices.Values(l.lines))); diff != "" {
			t.Errorf("%s and their findings differ (-%s +findings):\n%s", l.name, l.name, diff)
		}
	}
}
