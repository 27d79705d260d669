package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/policy/v1alpha1"
)

// trustedRootJSON is a valid trusted_root.json (from the sigstore
// conformance suite, test/assets/bundle-verify/intoto-with-custom-trust-root).
func trustedRootJSON(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/trustroot/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// yamlString quotes s as a YAML (JSON) double-quoted scalar.
func yamlString(t testing.TB, s string) string {
	t.Helper()
	q, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(q)
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

const keylessPolicy = `
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities:
  - name: release
    keyless:
      trustRoot: corp
      identities:
      - issuer: https://token.actions.githubusercontent.com
        subjectRegExp: '^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*$'
      extensions:
        githubWorkflowRepository: acme/app
`

func trustRootInline(t testing.TB, name string, data []byte) string {
	return "\n---\napiVersion: signgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: " + name + "}\nspec:\n  trustedRoot:\n    inline: " + yamlString(t, string(data)) + "\n"
}

// keylessOf returns the keyless authorities of the requirements.
func keylessOf(rs []Requirement) []*authority.Keyless {
	var out []*authority.Keyless
	for _, r := range rs {
		for _, a := range r.Authorities.All() {
			if a.Keyless != nil {
				out = append(out, a.Keyless)
			}
		}
	}
	return out
}

func TestFileSourceKeyless(t *testing.T) {
	t.Parallel()
	root := trustedRootJSON(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "policy.yaml"), keylessPolicy)
	writeFile(t, filepath.Join(dir, "trustroot.yaml"), trustRootInline(t, "corp", root))
	s, err := NewFileSource(dir, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if inv := s.InvalidPolicies(); len(inv) != 0 {
		t.Fatalf("InvalidPolicies() = %v, want none", inv)
	}
	repo := imageref.ParseRepo("registry.example.com/acme/app")
	rs := s.Snapshot().Requirements("default", nil, repo)
	got := summarize(rs)
	want := []req{{Policy: "ClusterImagePolicy release", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"release"}}}
	if len(got) != 1 || got[0].Policy != want[0].Policy || got[0].Err != "" || strings.Join(got[0].Authorities, ",") != "release" {
		t.Fatalf("Requirements = %+v, want %+v", got, want)
	}
	ks := keylessOf(rs)
	if len(ks) != 1 {
		t.Fatalf("keyless authorities = %d, want 1", len(ks))
	}
	k := ks[0]
	if k.TrustRoot.Name != "corp" || k.TrustRoot.Digest != hexSHA256(root) || k.TrustRoot.Material == nil {
		t.Errorf("TrustRoot = %q %q (material %v), want corp %s", k.TrustRoot.Name, k.TrustRoot.Digest, k.TrustRoot.Material != nil, hexSHA256(root))
	}
	if len(k.TrustRoot.Material.FulcioCertificateAuthorities()) == 0 {
		t.Error("trust material has no Fulcio CA")
	}
	if len(k.Identities) != 1 || k.Identities[0].Issuer != "https://token.actions.githubusercontent.com" {
		t.Errorf("Identities = %+v", k.Identities)
	}
	if k.Extensions["githubWorkflowRepository"] != "acme/app" {
		t.Errorf("Extensions = %v", k.Extensions)
	}
	if err := k.Match("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3", "https://token.actions.githubusercontent.com",
		map[string]string{"githubWorkflowRepository": "acme/app"}); err != nil {
		t.Errorf("Match: %v", err)
	}
	fp := rs[0].Authorities.Fingerprint()

	// A change of the TrustRoot's content (same trust, other bytes)
	// recompiles the policy: its fingerprint changes.
	changed := append(append([]byte{}, root...), '\n', ' ')
	writeFile(t, filepath.Join(dir, "trustroot.yaml"), trustRootInline(t, "corp", changed))
	if ok, err := s.Reload(); !ok || err != nil {
		t.Fatalf("Reload() = %v, %v", ok, err)
	}
	rs = s.Snapshot().Requirements("default", nil, repo)
	if len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("after the change: %+v", summarize(rs))
	}
	if rs[0].Authorities.Fingerprint() == fp {
		t.Error("fingerprint unchanged after the TrustRoot's content changed")
	}
	if d := keylessOf(rs)[0].TrustRoot.Digest; d != hexSHA256(changed) {
		t.Errorf("Digest = %s, want %s", d, hexSHA256(changed))
	}
}

// TestTrustRootRefs: a TrustRoot's trusted_root.json from a ConfigMap or a
// Secret of the gate's namespace; each TrustRoot is parsed once per
// compilation, and content parsed before is not parsed again.
func TestTrustRootRefs(t *testing.T) {
	t.Parallel()
	root := trustedRootJSON(t)
	doc := strings.ReplaceAll(keylessPolicy, "name: release}", "name: by-configmap}") +
		"---\n" + strings.ReplaceAll(strings.ReplaceAll(keylessPolicy, "name: release}", "name: by-secret}"), "trustRoot: corp", "trustRoot: secret") +
		"---\n" + strings.ReplaceAll(keylessPolicy, "name: release}", "name: again}") + `
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sigstore, namespace: signgate-system}
data:
  trusted_root.json: ` + yamlString(t, string(root)) + `
---
apiVersion: v1
kind: Secret
metadata: {name: sigstore, namespace: signgate-system}
stringData:
  root: ` + yamlString(t, string(root)) + `
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: corp}
spec: {trustedRoot: {configMapRef: {name: sigstore, key: trusted_root.json}}}
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: secret}
spec: {trustedRoot: {secretRef: {name: sigstore, key: root}}}
`
	objs := newObjects()
	if err := decodeObjects(objs, "test.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	c := compiler{gateNamespace: "signgate-system",
		secrets: func(ns, name string) (map[string][]byte, error) { return objs.secrets[ns][name], nil },
		configMaps: func(ns, name string) (map[string][]byte, error) {
			return objs.configMaps[ns][name], nil
		},
		trustRootObjs: objs.trustRoots,
	}
	trust, results := c.compile(objs.policies)
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%v", r.Err)
		}
	}
	ks := keylessOf(trust.requirements("default", nil, imageref.ParseRepo("registry.example.com/acme/app")))
	if len(ks) != 3 {
		t.Fatalf("keyless authorities = %d, want 3", len(ks))
	}
	names := map[string]int{}
	for _, k := range ks {
		names[k.TrustRoot.Name]++
		if k.TrustRoot.Digest != hexSHA256(root) {
			t.Errorf("%s: Digest %s, want %s", k.TrustRoot.Name, k.TrustRoot.Digest, hexSHA256(root))
		}
		// One content, one parse: every authority shares the material.
		if k.TrustRoot.Material != ks[0].TrustRoot.Material {
			t.Errorf("%s: trust material parsed again", k.TrustRoot.Name)
		}
	}
	if names["corp"] != 2 || names["secret"] != 1 {
		t.Errorf("TrustRoots used = %v, want corp twice and secret once", names)
	}
	// The next compilation reuses what this one parsed.
	trust, _ = c.compile(objs.policies)
	if again := keylessOf(trust.requirements("default", nil, imageref.ParseRepo("registry.example.com/acme/app"))); again[0].TrustRoot.Material != ks[0].TrustRoot.Material {
		t.Error("trust material parsed again by the next compilation")
	}
}

func TestKeylessInvalid(t *testing.T) {
	t.Parallel()
	root := trustedRootJSON(t)
	for _, tc := range []struct {
		name, doc string
		want      []string // substrings of the policy's error
	}{{
		name: "missing TrustRoot",
		doc:  keylessPolicy,
		want: []string{`authority "release": TrustRoot "corp": not found`},
	}, {
		name: "invalid JSON",
		doc:  keylessPolicy + trustRootInline(t, "corp", []byte(`{"mediaType": 1`)),
		want: []string{`authority "release": TrustRoot "corp": parse trusted root: `},
	}, {
		name: "not a trusted root",
		doc:  keylessPolicy + trustRootInline(t, "corp", []byte(`{"mediaType": "application/json"}`)),
		want: []string{`authority "release": TrustRoot "corp": parse trusted root: `},
	}, {
		name: "bad subjectRegExp",
		doc:  strings.Replace(keylessPolicy, `release\.yml@refs/tags/v.*$`, `(release`, 1) + trustRootInline(t, "corp", root),
		want: []string{`authority "release": keyless.identities[0]: subjectRegExp`, "missing closing )"},
	}, {
		name: "unknown extension",
		doc:  strings.Replace(keylessPolicy, "githubWorkflowRepository:", "githubRepo:", 1) + trustRootInline(t, "corp", root),
		want: []string{`authority "release": keyless: unknown certificate extension "githubRepo"`},
	}, {
		name: "both key and keyless",
		doc:  strings.Replace(keylessPolicy, "    keyless:", "    key: {data: {{P256}}}\n    keyless:", 1) + trustRootInline(t, "corp", root),
		want: []string{`authority "release": exactly one of key or keyless is required, both are set`},
	}, {
		name: "neither key nor keyless",
		doc: `
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: release}]
`,
		want: []string{`authority "release": exactly one of key or keyless is required, neither is set`},
	}, {
		name: "no trust root named",
		doc:  strings.Replace(keylessPolicy, "trustRoot: corp", "trustRoot: ''", 1),
		want: []string{`authority "release": keyless.trustRoot is required: no trust root is assumed`},
	}, {
		name: "ConfigMap missing",
		doc: keylessPolicy + `
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: corp}
spec: {trustedRoot: {configMapRef: {name: sigstore, key: trusted_root.json}}}
`,
		want: []string{`authority "release": TrustRoot "corp": read configmap signgate-system/sigstore: not found`},
	}, {
		name: "TrustRoot does not decode",
		doc: keylessPolicy + `
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: corp}
spec: {trustedRoot: {inlin: "{}"}}
`,
		want: []string{`authority "release": TrustRoot "corp": decode: `, "inlin"},
	}, {
		name: "two sources",
		doc: keylessPolicy + `
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: corp}
spec: {trustedRoot: {inline: "{}", secretRef: {name: s, key: k}}}
`,
		want: []string{`TrustRoot "corp": trustedRoot: exactly one of inline, configMapRef or secretRef is required, 2 are set`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			trust, results := compileYAML(t, tc.doc)
			if len(results) != 1 || results[0].Err == nil {
				t.Fatalf("results = %+v, want one invalid policy", results)
			}
			msg := results[0].Err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			rs := trust.requirements("default", nil, imageref.ParseRepo("registry.example.com/acme/app"))
			if len(rs) != 1 || rs[0].Err == nil || rs[0].Mode != ModeEnforce {
				t.Errorf("requirements = %+v, want the invalid policy enforced", summarize(rs))
			}
		})
	}
}

// TestClusterSourceTrustRootLater: a keyless policy naming a TrustRoot that
// does not exist yet is invalid, and becomes valid once it is created.
func TestClusterSourceTrustRootLater(t *testing.T) {
	t.Parallel()
	root := trustedRootJSON(t)
	cipGVR, ipGVR, trGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource, v1alpha1.TrustRootResource
	spec := v1alpha1.ImagePolicySpec{
		Images: []v1alpha1.ImageGlob{{Glob: "registry.example.com/**"}},
		Authorities: []v1alpha1.Authority{{Name: "release", Keyless: &v1alpha1.KeylessAuthority{
			TrustRoot: "corp",
			Identities: []v1alpha1.KeylessIdentity{{
				Issuer:        "https://token.actions.githubusercontent.com",
				SubjectRegExp: `^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*$`,
			}},
		}}},
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", trGVR: "TrustRootList"},
		clusterPolicy(t, "release", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: spec}),
	)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "signgate-system", Name: "sigstore"}, Data: map[string]string{"trusted_root.json": string(root)}},
	)
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{Resync: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := startSource(t, s)
	repo := imageref.ParseRepo("registry.example.com/acme/app")
	rs := s.Snapshot().Requirements("default", nil, repo)
	if len(rs) != 1 || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), `authority "release": TrustRoot "corp": not found`) {
		t.Fatalf("before the TrustRoot: %+v, want invalid naming TrustRoot corp", summarize(rs))
	}

	tr := toUnstructured(t, &v1alpha1.TrustRoot{ObjectMeta: metav1.ObjectMeta{Name: "corp"}, Spec: v1alpha1.TrustRootSpec{
		TrustedRoot: &v1alpha1.TrustedRootSource{ConfigMapRef: &v1alpha1.ConfigMapKeyRef{Name: "sigstore", Key: "trusted_root.json"}},
	}}, KindTrustRoot)
	if _, err := dyn.Resource(trGVR).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		rs := s.Snapshot().Requirements("default", nil, repo)
		return len(rs) == 1 && rs[0].Err == nil
	})
	ks := keylessOf(s.Snapshot().Requirements("default", nil, repo))
	if len(ks) != 1 || ks[0].TrustRoot.Name != "corp" || ks[0].TrustRoot.Digest != hexSHA256(root) {
		t.Errorf("keyless authorities = %+v, want one on TrustRoot corp", ks)
	}
	if inv := s.InvalidPolicies(); len(inv) != 0 {
		t.Errorf("InvalidPolicies() = %v", inv)
	}
}

// TestFileSourceTrustRootsOption: FileOptions.TrustRoots (check's
// --trusted-root) gives the directory's policies their TrustRoot, even
// without a directory; a name the directory defines too is an error.
func TestFileSourceTrustRootsOption(t *testing.T) {
	t.Parallel()
	root := trustedRootJSON(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "policy.yaml"), keylessPolicy)
	s, err := NewFileSource(dir, FileOptions{TrustRoots: map[string][]byte{"corp": root}})
	if err != nil {
		t.Fatal(err)
	}
	rs := s.Snapshot().Requirements("default", nil, imageref.ParseRepo("registry.example.com/acme/app"))
	if ks := keylessOf(rs); len(ks) != 1 || ks[0].TrustRoot.Digest != hexSHA256(root) {
		t.Fatalf("requirements %+v: want the keyless authority on TrustRoot corp", summarize(rs))
	}
	writeFile(t, filepath.Join(dir, "trustroot.yaml"), trustRootInline(t, "corp", root))
	if _, err := NewFileSource(dir, FileOptions{TrustRoots: map[string][]byte{"corp": root}}); err == nil || !strings.Contains(err.Error(), `TrustRoot "corp" is defined in `+dir+" and given again") {
		t.Errorf("duplicate TrustRoot: %v", err)
	}
	empty, err := NewFileSource("", FileOptions{TrustRoots: map[string][]byte{"corp": root}})
	if err != nil {
		t.Fatalf("no directory: %v", err)
	}
	if rs := empty.Snapshot().Requirements("default", nil, imageref.ParseRepo("registry.example.com/acme/app")); len(rs) != 0 {
		t.Errorf("no directory, no policies: got %+v", summarize(rs))
	}
}
