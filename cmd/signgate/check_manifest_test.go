package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckParseManifests(t *testing.T) {
	t.Parallel()
	type obj struct {
		Kind, Name, Namespace string
		Line                  int
	}
	tests := []struct {
		name    string
		in      string
		want    []obj
		wantErr string
	}{
		{
			name: "multi-document with comments, empty documents and markers",
			in: `# leading comment
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: ns}
--- # comment on the marker

---
# comment before content
apiVersion: apps/v1
kind: Deployment
metadata: {name: b}
...
--- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
`,
			want: []obj{{"Pod", "a", "ns", 3}, {"Deployment", "b", "", 10}, {"ConfigMap", "c", "", 14}},
		},
		{
			name: "JSON object",
			in:   "\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"j\"}}\n",
			want: []obj{{"Pod", "j", "", 2}},
		},
		{
			name: "List items keep the list's line",
			in: `apiVersion: v1
kind: ConfigMap
metadata: {name: first}
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: p}}
  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: d, namespace: x}}
`,
			want: []obj{{"ConfigMap", "first", "", 1}, {"Pod", "p", "", 5}, {"Deployment", "d", "x", 5}},
		},
		{
			name: "generateName",
			in:   "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\n",
			want: []obj{{"Pod", "web-*", "", 1}},
		},
		{
			name: "CRLF line endings and a BOM",
			in:   "\xef\xbb\xbfapiVersion: v1\r\nkind: Pod\r\nmetadata: {name: w}\r\n---\r\napiVersion: v1\r\nkind: Pod\r\nmetadata: {name: x}\r\n",
			want: []obj{{"Pod", "w", "", 1}, {"Pod", "x", "", 5}},
		},
		{
			name:    "bad indentation: line inside the second document",
			in:      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n name: x\n  bad: 1\n",
			wantErr: "f.yaml:9: invalid YAML: mapping values are not allowed in this context",
		},
		{
			name:    "duplicate key",
			in:      "apiVersion: v1\nkind: Pod\nkind: Deployment\n",
			wantErr: `f.yaml:3: invalid YAML: unmarshal errors: key "kind" already set in map`,
		},
		{
			name:    "tab indentation",
			in:      "---\napiVersion: v1\nkind: Pod\nspec:\n\tcontainers: []\n",
			wantErr: "f.yaml:5: invalid YAML: found character that cannot start any token",
		},
		{
			name:    "not an object",
			in:      "apiVersion: v1\nkind: Pod\n---\n\n- a\n- b\n",
			wantErr: "f.yaml:5: not a Kubernetes object (expected a mapping with apiVersion and kind)",
		},
		{
			name:    "missing kind",
			in:      "apiVersion: v1\nmetadata: {name: x}\n",
			wantErr: "f.yaml:1: not a Kubernetes object: apiVersion and kind are required",
		},
		{
			name: "only comments",
			in:   "# nothing here\n---\n# nor here\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := parseManifests("f.yaml", []byte(tt.in))
			if tt.wantErr != "" {
				var ie *inputError
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want an *inputError %q", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []obj
			for _, m := range ms {
				got = append(got, obj{m.Kind, m.Name, m.Namespace, m.At.Line})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckReadManifestsDirectory(t *testing.T) {
	t.Parallel()
	ms, err := readManifests([]string{"testdata/check/mixed"}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Kind+" "+m.Name+" "+m.At.String())
	}
	want := []string{
		"CronJob report testdata/check/mixed/cronjob.yaml:1",
		"Deployment api testdata/check/mixed/deployment.yaml:1",
		"Pod web testdata/check/mixed/pods.yaml:2",
		"ConfigMap settings testdata/check/mixed/pods.yaml:18",
		"Pod root-shell testdata/check/mixed/pods.yaml:25",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

func TestCheckReadManifestsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"bad YAML in a directory", []string{"testdata/check/bad"}, "testdata/check/bad/broken.yaml:12: invalid YAML: did not find expected '-' indicator"},
		{"missing file", []string{"testdata/check/nope.yaml"}, "testdata/check/nope.yaml: no such file or directory"},
		{"stdin", []string{"-"}, "<stdin>:2: invalid YAML: found character that cannot start any token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := readManifests(tt.paths, strings.NewReader("a:\n\t- b\n"))
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzCheckParseManifests: any input either parses or fails with an
// *inputError whose line is inside the file; it never panics.
func FuzzCheckParseManifests(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
		"---\n--- {apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Pod}]}\n...\n",
		"apiVersion: v1\nkind: Pod\nmetadata:\n name: x\n  bad: 1\n",
		"\xef\xbb\xbf{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}\r\n",
		"a: &x [*x]\n",
		"0: \n0", // the parser names the line after the last one
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseManifests("f.yaml", data)
		if err == nil {
			return
		}
		var ie *inputError
		if !errors.As(err, &ie) {
			t.Fatalf("error %v is not an *inputError", err)
		}
		if lines := strings.Count(string(data), "\n") + 1; ie.At.Line < 1 || ie.At.Line > lines {
			t.Fatalf("error at line %d of a %d-line input: %v", ie.At.Line, lines, err)
		}
	})
}
