package admission

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestValidatePolicy: a ClusterImagePolicy, ImagePolicy or TrustRoot
// being applied is checked with the gate's compiler; a bad one is denied
// with the compiler's message, naming the object; a good one, or one
// naming Secrets and TrustRoots that do not exist yet, is admitted.
func TestValidatePolicy(t *testing.T) {
	t.Parallel()
	g := newTestGate(t)
	review := func(kind, namespace, name, object string) *admissionv1.AdmissionRequest {
		return &admissionv1.AdmissionRequest{
			UID: "u", Kind: metav1.GroupVersionKind{Group: "signgate.dev", Version: "v1alpha1", Kind: kind},
			Namespace: namespace, Name: name, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: []byte(object)},
		}
	}
	for _, tc := range []struct {
		name, kind, namespace, object string
		want                          string // "" = admitted
	}{
		{"static pass", "ClusterImagePolicy", "", `{"apiVersion":"signgate.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"p"},"spec":{"images":[{"glob":"r.example/**"}],"static":{"action":"pass"}}}`, ""},
		{"refs not read", "ImagePolicy", "team-a", `{"apiVersion":"signgate.dev/v1alpha1","kind":"ImagePolicy","metadata":{"name":"p","namespace":"team-a"},"spec":{"images":[{"glob":"r.example/**"}],` +
			`"authorities":[{"name":"k","key":{"secretRef":{"name":"cosign","key":"cosign.pub"}}},{"name":"c","keyless":{"trustRoot":"later","identities":[{"issuer":"https://i.example","subject":"s"}]}}]}}`, ""},
		{"bad glob", "ClusterImagePolicy", "", `{"apiVersion":"signgate.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"p"},"spec":{"images":[{"glob":"r.example/[**"}],"static":{"action":"pass"}}}`,
			`ClusterImagePolicy p is invalid: images[0]: compile glob "r.example/[**"`},
		{"unknown field", "ImagePolicy", "team-a", `{"apiVersion":"signgate.dev/v1alpha1","kind":"ImagePolicy","metadata":{"name":"p","namespace":"team-a"},"spec":{"imagess":[]}}`,
			`ImagePolicy team-a/p is invalid: decode: `},
		{"bad CEL", "ClusterImagePolicy", "", `{"apiVersion":"signgate.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"p"},"spec":{"images":[{"glob":"r.example/**"}],` +
			`"authorities":[{"name":"c","keyless":{"trustRoot":"t","identities":[{"issuer":"https://i.example","subject":"s"}]},"attestations":[{"name":"a","predicateType":"spdxjson","condition":"predicate.x =="}]}]}}`,
			`authority "c": attestations[0] (a): condition: ERROR`},
		{"bad TrustRoot", "TrustRoot", "", `{"apiVersion":"signgate.dev/v1alpha1","kind":"TrustRoot","metadata":{"name":"t"},"spec":{"tuf":{"mirror":"ftp://x","root":{"inline":"{}"}}}}`,
			`TrustRoot t is invalid: tuf.mirror "ftp://x": want an http or https URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.Validate(t.Context(), review(tc.kind, tc.namespace, "p", tc.object))
			if tc.kind == "TrustRoot" {
				r = g.Validate(t.Context(), review(tc.kind, tc.namespace, "t", tc.object))
			}
			switch {
			case tc.want == "" && !r.Allowed:
				t.Errorf("denied: %v", r.Result)
			case tc.want != "" && (r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, tc.want)):
				t.Errorf("allowed %v, %v; want denied with %q", r.Allowed, r.Result, tc.want)
			}
		})
	}
}
