package v1alpha1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

func TestAddToScheme(t *testing.T) {
	t.Parallel()
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"ClusterImagePolicy", "ClusterImagePolicyList", "ImagePolicy", "ImagePolicyList", "TrustRoot", "TrustRootList"} {
		if !s.Recognizes(GroupVersion.WithKind(kind)) {
			t.Errorf("scheme does not recognize %s", kind)
		}
	}
	obj, err := s.New(GroupVersion.WithKind("ClusterImagePolicy"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.(*ClusterImagePolicy); !ok {
		t.Errorf("New(ClusterImagePolicy) = %T", obj)
	}
}

// TestYAMLShape pins the field names of docs/policies.md, including the inlined
// spec of the cluster kind.
func TestYAMLShape(t *testing.T) {
	t.Parallel()
	const doc = `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: corp}
spec:
  images: [{glob: "registry.example.com/**"}]
  mode: warn
  threshold: 2
  namespaceSelector: {matchLabels: {env: prod}}
  authorities:
  - {name: a, key: {data: PEM}}
  - {name: b, key: {secretRef: {name: s, key: cosign.pub}}}
`
	var got ClusterImagePolicy
	if err := yaml.UnmarshalStrict([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := ClusterImagePolicySpec{
		ImagePolicySpec: ImagePolicySpec{
			Images:    []ImageGlob{{Glob: "registry.example.com/**"}},
			Mode:      ModeWarn,
			Threshold: 2,
			Authorities: []Authority{
				{Name: "a", Key: &KeySource{Data: "PEM"}},
				{Name: "b", Key: &KeySource{SecretRef: &SecretKeyRef{Name: "s", Key: "cosign.pub"}}},
			},
		},
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("spec mismatch (-want +got):\n%s", diff)
	}
	cp := got.DeepCopy()
	cp.Spec.Authorities[1].Key.SecretRef.Name = "changed"
	if got.Spec.Authorities[1].Key.SecretRef.Name != "s" {
		t.Error("DeepCopy shares the secretRef")
	}
}

// TestKeylessYAMLShape pins the field names of keyless authorities and
// TrustRoots in docs/policies.md.
func TestKeylessYAMLShape(t *testing.T) {
	t.Parallel()
	const policy = `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities:
  - name: release
    keyless:
      trustRoot: corp
      identities:
      - {issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "^x$"}
      - {issuerRegExp: "^https://a$", subject: "me@example.com"}
      extensions: {githubWorkflowRepository: acme/app}
`
	var cip ClusterImagePolicy
	if err := yaml.UnmarshalStrict([]byte(policy), &cip); err != nil {
		t.Fatal(err)
	}
	want := []Authority{{Name: "release", Keyless: &KeylessAuthority{
		TrustRoot: "corp",
		Identities: []KeylessIdentity{
			{Issuer: "https://token.actions.githubusercontent.com", SubjectRegExp: "^x$"},
			{IssuerRegExp: "^https://a$", Subject: "me@example.com"},
		},
		Extensions: map[string]string{"githubWorkflowRepository": "acme/app"},
	}}}
	if diff := cmp.Diff(want, cip.Spec.Authorities); diff != "" {
		t.Errorf("authorities mismatch (-want +got):\n%s", diff)
	}
	const roots = `apiVersion: signgate.dev/v1alpha1
kind: TrustRootList
items:
- {metadata: {name: a}, spec: {trustedRoot: {inline: "{}"}}}
- {metadata: {name: b}, spec: {trustedRoot: {configMapRef: {name: sigstore, key: trusted_root.json}}}}
- {metadata: {name: c}, spec: {trustedRoot: {secretRef: {name: sigstore, key: trusted_root.json}}}}
- {metadata: {name: d}, spec: {tuf: {mirror: "https://tuf.example", root: {inline: "{}"}, refreshInterval: 10m}}}
`
	var l TrustRootList
	if err := yaml.UnmarshalStrict([]byte(roots), &l); err != nil {
		t.Fatal(err)
	}
	wantRoots := []*TrustedRootSource{
		{Inline: "{}"},
		{ConfigMapRef: &ConfigMapKeyRef{Name: "sigstore", Key: "trusted_root.json"}},
		{SecretRef: &SecretKeyRef{Name: "sigstore", Key: "trusted_root.json"}},
	}
	for i, w := range wantRoots {
		if diff := cmp.Diff(w, l.Items[i].Spec.TrustedRoot); diff != "" {
			t.Errorf("items[%d] mismatch (-want +got):\n%s", i, diff)
		}
	}
	wantTUF := &TUFSource{Mirror: "https://tuf.example", Root: TrustedRootSource{Inline: "{}"}, RefreshInterval: &metav1.Duration{Duration: 10 * time.Minute}}
	if diff := cmp.Diff(wantTUF, l.Items[3].Spec.TUF); diff != "" || l.Items[3].Spec.TrustedRoot != nil {
		t.Errorf("items[3] (tuf) mismatch (-want +got):\n%s", diff)
	}
	cp := cip.DeepCopy()
	cp.Spec.Authorities[0].Keyless.Extensions["githubWorkflowRepository"] = "changed"
	if cip.Spec.Authorities[0].Keyless.Extensions["githubWorkflowRepository"] != "acme/app" {
		t.Error("DeepCopy shares the extensions")
	}
}
