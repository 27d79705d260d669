package v1alpha1

import (
	"testing"

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
	for _, kind := range []string{"ClusterImagePolicy", "ClusterImagePolicyList", "ImagePolicy", "ImagePolicyList"} {
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
				{Name: "a", Key: KeySource{Data: "PEM"}},
				{Name: "b", Key: KeySource{SecretRef: &SecretKeyRef{Name: "s", Key: "cosign.pub"}}},
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
