package convert

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signgate/signgate/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden converts every fixture under testdata/<tool>/ (the tools'
// own published examples; SOURCE.md next to them names where each comes
// from and its license) and compares the output with FIXTURE.golden: the
// converted objects, then every problem and skipped document. Every
// converted object must pass `signgate lint` (policy.LintFile).
func TestGolden(t *testing.T) {
	fixtures, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(fixtures) == 0 {
		t.Skip("no fixtures")
	}
	for _, f := range fixtures {
		name := strings.TrimPrefix(f, "testdata/")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Convert(name, data, Options{})
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			got := render(t, r)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/convert -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (go test ./internal/convert -update):\n%s", golden, got)
			}
			var out bytes.Buffer
			if err := WriteYAML(&out, r.Objects); err != nil {
				t.Fatal(err)
			}
			for _, p := range policy.LintFile(name+" (converted)", out.Bytes()) {
				t.Errorf("converted policy does not lint: %s", p)
			}
		})
	}
}

// render is a golden file's content.
func render(t *testing.T, r Result) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteYAML(&b, r.Objects); err != nil {
		t.Fatal(err)
	}
	SortProblems(r.Problems)
	fmt.Fprintf(&b, "# %d problems\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "# problem: %s\n", p)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "# skipped: %s\n", s)
	}
	return b.Bytes()
}

// TestUnknownFields: a field no converter knows is a problem, never
// dropped silently.
func TestUnknownFields(t *testing.T) {
	d := document{Source: Source{File: "f.yaml", Line: 3, Kind: "ClusterImagePolicy", Name: "p"}}
	ps := d.unknown("spec", map[string]any{"images": 1, "zzz": 2, "aaa": 3}, "images")
	if len(ps) != 2 || ps[0].Field != "spec.aaa" || ps[1].Field != "spec.zzz" {
		t.Fatalf("unknown = %v", ps)
	}
	if got := ps[0].String(); got != "f.yaml:3: ClusterImagePolicy p: spec.aaa: not a field signgate knows how to convert; left out" {
		t.Errorf("String() = %q", got)
	}
}

// TestDocuments: several documents, comments, Lists; other kinds are
// skipped; unreadable YAML is an error naming the file and line.
func TestDocuments(t *testing.T) {
	in := "# a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
	r, err := Convert("in.yaml", []byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Skipped) != 2 || r.Skipped[0].Line != 3 || r.Skipped[0].Kind != "Deployment" || r.Skipped[1].Name != "a" {
		t.Fatalf("skipped = %+v", r.Skipped)
	}
	if _, err := Convert("bad.yaml", []byte("a: b\n---\nkind: [\n"), Options{}); err == nil || !strings.Contains(err.Error(), "bad.yaml:3: document 2") {
		t.Fatalf("bad YAML: %v", err)
	}
}
