package policy

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/signgate/signgate/policy/v1alpha1"
)

const summaryPolicies = `
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: corp}
spec:
  images: [{glob: "registry.example.com/**"}, {glob: "GHCR.io/acme/*"}, {glob: "*.example.net/**"}, {glob: "**"}]
  static: {action: pass}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: broken}
spec:
  mode: sometimes
  images: [{glob: "quay.io/x/**"}]
  static: {action: fail}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "registry.example.com/release/**"}]
  authorities:
  - name: release
    keyless:
      trustRoot: corp
      identities: [{issuer: https://issuer.example, subject: release@example.com}]
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: corp}
spec:
  trustedRoot: {inline: "{not json"}
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: spare}
spec:
  trustedRoot: {configMapRef: {name: spare, key: trusted_root.json}}
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: ci, namespace: team-a}
spec:
  images: [{glob: "registry.example.com:5000/team-a/**"}, {glob: "ghcr.io/team-a/*"}]
  static: {action: fail}
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: hub, namespace: team-b}
spec:
  images: [{glob: "nginx"}]
  static: {action: fail}
`

// TestSummary: policies and TrustRoots by state, and the hosts the globs
// name (cluster policies' first, canonical, none for a wildcard host), as
// Summary and OnCompile give them.
func TestSummary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "policies.yaml")
	if err := os.WriteFile(file, []byte(summaryPolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls []Summary
	s, err := NewFileSource(dir, FileOptions{OnCompile: func(sum Summary) { calls = append(calls, sum) }})
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{
		ClusterImagePolicies: Count{Ready: 1, Invalid: 2}, // broken: its mode; release: its TrustRoot
		ImagePolicies:        Count{Ready: 2},
		TrustRoots:           Count{Ready: 1, Invalid: 1}, // spare is not used, so not read
		Hosts:                []string{"ghcr.io", "quay.io", "registry.example.com", "index.docker.io", "registry.example.com:5000"},
	}
	if diff := cmp.Diff(want, s.Summary()); diff != "" {
		t.Errorf("Summary (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Summary{want}, calls); diff != "" {
		t.Errorf("OnCompile calls (-want +got):\n%s", diff)
	}
	corp := "apiVersion: signgate.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: corp}\n" +
		"spec: {images: [{glob: \"registry.example.com/**\"}, {glob: \"GHCR.io/acme/*\"}], static: {action: pass}}\n"
	if err := os.WriteFile(file, []byte(corp), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); err != nil || !changed {
		t.Fatalf("Reload() = %v, %v", changed, err)
	}
	if len(calls) != 2 {
		t.Fatalf("%d OnCompile calls, want 2", len(calls))
	}
	want = Summary{ClusterImagePolicies: Count{Ready: 1}, Hosts: []string{"ghcr.io", "registry.example.com"}}
	if diff := cmp.Diff(want, calls[1]); diff != "" {
		t.Errorf("OnCompile after Reload (-want +got):\n%s", diff)
	}
}

// TestClusterSourceSummary: a ClusterSource's Summary and OnCompile, from
// the Run goroutine, after the view is in place.
func TestClusterSourceSummary(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	cipGVR, ipGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", v1alpha1.TrustRootResource: "TrustRootList"},
		clusterPolicy(t, "prod", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: secretKeySpec("registry.example.com/**", "release")}),
		clusterPolicy(t, "broken", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: secretKeySpec("quay.io/**", "missing")}),
		imagePolicy(t, "team-a", "ci", secretKeySpec("Docker.io/team-a/*", "release")),
	)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(pemSecret("signgate-system", "release", keys["P256"]), pemSecret("team-a", "release", keys["P256"]))
	var (
		mu    sync.Mutex
		calls []Summary
	)
	var s *ClusterSource
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{ReadOnly: true, OnCompile: func(sum Summary) {
		if diff := cmp.Diff(sum, s.Summary()); diff != "" {
			t.Errorf("OnCompile before the view is in place (-called +Summary):\n%s", diff)
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, sum)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Summary{}, s.Summary()); diff != "" {
		t.Errorf("Summary before Run (-want +got):\n%s", diff)
	}
	startSource(t, s)
	want := Summary{
		ClusterImagePolicies: Count{Ready: 1, Invalid: 1},
		ImagePolicies:        Count{Ready: 1},
		Hosts:                []string{"quay.io", "registry.example.com", "index.docker.io"},
	}
	if diff := cmp.Diff(want, s.Summary()); diff != "" {
		t.Errorf("Summary (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) == 0 {
		t.Fatal("OnCompile not called")
	}
	if diff := cmp.Diff(want, calls[0]); diff != "" {
		t.Errorf("OnCompile (-want +got):\n%s", diff)
	}
}
