package chart_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// crdNames are the CustomResourceDefinitions generated from
// policy/v1alpha1 into templates/crds (make crds).
var crdNames = []string{
	"clusterimagepolicies.signgate.dev",
	"imagepolicies.signgate.dev",
	"trustroots.signgate.dev",
}

const keepAnnotation = "    helm.sh/resource-policy: keep"

// The CRDs are templates, so `helm upgrade` upgrades them; each is kept on
// uninstall (helm.sh/resource-policy: keep). crds.install=false renders none.
func TestCRDs(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			var names []string
			for _, o := range kinds(render(t, sc.args...), "CustomResourceDefinition") {
				names = append(names, o.Metadata.Name)
				var crd struct {
					Metadata struct {
						Annotations map[string]string `json:"annotations"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal(o.raw, &crd); err != nil {
					t.Fatalf("decode CRD %s: %v", o.Metadata.Name, err)
				}
				if got := crd.Metadata.Annotations["helm.sh/resource-policy"]; got != "keep" {
					t.Errorf("CRD %s: annotation helm.sh/resource-policy = %q, want keep (uninstall would delete every policy)", o.Metadata.Name, got)
				}
			}
			slices.Sort(names)
			want := crdNames
			if slices.Contains(sc.args, "audit.enabled=true") {
				// Plus the Policy WG's, with no cluster to look up (audit_test.go).
				want = slices.Sorted(slices.Values(append(slices.Clone(crdNames), "clusterpolicyreports.wgpolicyk8s.io", "policyreports.wgpolicyk8s.io")))
			}
			if !slices.Equal(names, want) {
				t.Errorf("rendered CRDs %v, want %v", names, want)
			}
		})
	}
	if n := len(kinds(render(t, "--set", "crds.install=false"), "CustomResourceDefinition")); n != 0 {
		t.Errorf("crds.install=false: rendered %d CRDs, want none", n)
	}
}

// Helm renders each CRD exactly as controller-gen wrote it, apart from the
// keep annotation: nothing in the generated YAML is taken for a template
// action. (make verify-crds checks that templates/crds is controller-gen's
// output plus the if/end lines and the annotation.)
func TestCRDsRenderAsGenerated(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("templates", "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(crdNames) {
		t.Fatalf("templates/crds holds %d files, want %d (run make crds)", len(files), len(crdNames))
	}
	rendered := map[string]string{}
	for _, o := range kinds(render(t), "CustomResourceDefinition") {
		rendered[o.Metadata.Name] = string(o.raw)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if first, last := lines[0], lines[len(lines)-2]; first != "{{- if .Values.crds.install }}" || last != "{{- end }}" || lines[len(lines)-1] != "" {
			t.Errorf("%s: first line %q, last %q: want the crds.install guard (run make crds)", f, first, last)
			continue
		}
		generated := withoutLines(lines[1:len(lines)-2], keepAnnotation, "---")
		var name string
		for _, l := range generated {
			if n, ok := strings.CutPrefix(l, "  name: "); ok {
				name = n
				break
			}
		}
		doc, ok := rendered[name]
		if !ok {
			t.Errorf("%s: CRD %q not rendered", f, name)
			continue
		}
		got := withoutLines(strings.Split(strings.TrimSpace(doc), "\n"), keepAnnotation)
		if got[0] != "# Source: signgate/templates/crds/"+filepath.Base(f) {
			t.Errorf("%s: rendered document starts %q", f, got[0])
		}
		if !slices.Equal(got[1:], generated) {
			t.Errorf("%s: rendered CRD %s differs from the generated YAML", f, name)
		}
	}
}

// withoutLines is lines without the first occurrence of each of drop.
func withoutLines(lines []string, drop ...string) []string {
	out := slices.Clone(lines)
	for _, d := range drop {
		if i := slices.Index(out, d); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
	}
	return out
}
