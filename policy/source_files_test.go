package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signgate/signgate/internal/imageref"
)

func TestFileSourceLoad(t *testing.T) {
	t.Parallel()
	s, err := NewFileSource("testdata/trust", FileOptions{
		NamespaceLabels: map[string]map[string]string{
			"team-a": {"tier": "gold"},
			"team-z": {"env": "prod"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Error("Ready() = false after load")
	}
	if inv := s.InvalidPolicies(); len(inv) != 0 {
		t.Errorf("InvalidPolicies() = %v, want none", inv)
	}
	snap := s.Snapshot()
	for ns, want := range map[string]map[string]string{
		"team-a":  {"kubernetes.io/metadata.name": "team-a", "env": "prod", "tier": "gold"},
		"team-z":  {"kubernetes.io/metadata.name": "team-z", "env": "prod"},
		"unknown": {"kubernetes.io/metadata.name": "unknown"},
	} {
		got, err := snap.Namespace(ns)
		if err != nil {
			t.Errorf("Namespace(%q): %v", ns, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Namespace(%q) mismatch (-want +got):\n%s", ns, diff)
		}
	}
	labels, _ := snap.Namespace("team-a")
	got := summarize(snap.Requirements("team-a", labels, imageref.ParseRepo("registry.example.com/team-a/app")))
	want := []req{
		{Policy: "ClusterImagePolicy corp", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"release"}},
		{Policy: "ImagePolicy team-a/ci", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"ci"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Requirements mismatch (-want +got):\n%s", diff)
	}
	got = summarize(snap.Requirements("default", nil, imageref.ParseRepo("index.docker.io/library/nginx")))
	want = []req{{Policy: "ClusterImagePolicy hub", Mode: ModeWarn, Static: StaticFail}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Requirements mismatch (-want +got):\n%s", diff)
	}
}

func TestFileSourceReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"cluster.yaml", "team-a.yaml"} {
		copyFile(t, filepath.Join("testdata/trust", f), filepath.Join(dir, f))
	}
	s, err := NewFileSource(dir, FileOptions{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const repo = "quay.io/acme/app"
	before := s.Snapshot()
	if rs := before.Requirements("team-b", nil, imageref.ParseRepo(repo)); len(rs) != 0 {
		t.Fatalf("before: %d requirements, want 0", len(rs))
	}

	// A new file with a policy shows up.
	writeFile(t, filepath.Join(dir, "quay.yml"), `
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: quay}
spec:
  images: [{glob: "quay.io/**"}]
  static: {action: fail}
`)
	waitFor(t, func() bool { return len(s.Snapshot().Requirements("team-b", nil, imageref.ParseRepo(repo))) == 1 })
	if rs := before.Requirements("team-b", nil, imageref.ParseRepo(repo)); len(rs) != 0 {
		t.Errorf("an old snapshot changed: %d requirements, want 0", len(rs))
	}

	// A broken file keeps the last good view and says so.
	writeFile(t, filepath.Join(dir, "quay.yml"), "kind: [unclosed\n")
	waitFor(t, func() bool { return s.LastError() != nil })
	if rs := s.Snapshot().Requirements("team-b", nil, imageref.ParseRepo(repo)); len(rs) != 1 {
		t.Errorf("after a bad reload: %d requirements, want the last good 1", len(rs))
	}

	// Fixing it recovers; removing the policy removes its requirement.
	if err := os.Remove(filepath.Join(dir, "quay.yml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return s.LastError() == nil && len(s.Snapshot().Requirements("team-b", nil, imageref.ParseRepo(repo))) == 0
	})

	// Hidden and non-YAML files are ignored.
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "kind: [unclosed\n")
	writeFile(t, filepath.Join(dir, "README.md"), "# policies\n")
	if changed, err := s.Reload(); err != nil || changed {
		t.Errorf("Reload() = %v, %v; want no change, no error", changed, err)
	}
}

func TestFileSourceInvalidPolicyListed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.yaml"), `
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: broken, namespace: team-a}
spec:
  images: [{glob: "quay.io/**"}]
  authorities: [{name: k, key: {secretRef: {name: missing, key: cosign.pub}}}]
`)
	s, err := NewFileSource(dir, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range s.InvalidPolicies() {
		got = append(got, e.Error())
	}
	want := []string{`ImagePolicy team-a/broken is invalid: authority "k": read secret team-a/missing: not found in ` + dir}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("InvalidPolicies mismatch (-want +got):\n%s", diff)
	}
}

func TestFileSourceLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"bad yaml", "kind: [unclosed\n", "decode"},
		{"unknown kind", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", "apps/v1 Deployment is not a ClusterImagePolicy"},
		{"misspelt kind", "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolcy\nmetadata: {name: x}\n", "is not a ClusterImagePolicy"},
		{"wrong version", "apiVersion: signgate.dev/v1\nkind: ClusterImagePolicy\nmetadata: {name: x}\n", "is not a ClusterImagePolicy"},
		{"no name", "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nspec: {}\n", "without metadata.name"},
		{"duplicate", strings.Repeat("---\napiVersion: signgate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {}\n", 2), "ImagePolicy default/x defined twice"},
		{"duplicate namespace", strings.Repeat("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", 2), `Namespace "x" defined twice`},
		{"scalar document", "just text\n", "not a Kubernetes object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "p.yaml"), tt.content)
			_, err := NewFileSource(dir, FileOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewFileSource() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := NewFileSource(filepath.Join(t.TempDir(), "missing"), FileOptions{}); err == nil {
		t.Error("NewFileSource(missing dir) = nil error")
	}
}

func TestFileSourceList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "list.json"), `{"apiVersion":"v1","kind":"List","items":[
	  {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a","labels":{"env":"prod"}}},
	  {"apiVersion":"signgate.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"p"},
	   "spec":{"images":[{"glob":"**"}],"static":{"action":"pass"},"namespaceSelector":{"matchLabels":{"env":"prod"}}}}]}`)
	s, err := NewFileSource(dir, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels, _ := s.Snapshot().Namespace("team-a")
	if rs := s.Snapshot().Requirements("team-a", labels, imageref.ParseRepo("quay.io/x")); len(rs) != 1 || rs[0].Static != StaticPass {
		t.Errorf("Requirements = %+v, want the static pass policy", rs)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

// writeFile replaces a file atomically, as a ConfigMap mount or an editor
// would, so a poll never sees half a file.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// hangGuard bounds every wait of these tests. It only turns a hang into a
// failure: how soon a change is seen is not what they assert.
const hangGuard = 2 * time.Minute

// waitFor polls cond until it holds; it fails t after hangGuard.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	waitForf(t, func() (bool, string) { return cond(), "false" })
}
