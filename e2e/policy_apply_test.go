//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/signgate/signgate/e2e/harness"
	"github.com/signgate/signgate/policy"
)

// deniedByPolicyWebhook is the prefix of a denial by the gate's policy
// webhook through the API server.
var deniedByPolicyWebhook = fmt.Sprintf("admission webhook %q denied the request", harness.PolicyWebhookName)

// badPEM is a PEM PUBLIC KEY block (so the CRD's rule lets it through)
// whose content is no key: the gate's compiler refuses it.
const badPEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"

// A ClusterImagePolicy, ImagePolicy or TrustRoot the gate's compiler
// rejects is refused at apply by the policy webhook, with the compiler's
// message naming the object; what the CRD's own rules reject is refused
// before the webhook is asked (and the compiler rejects it too). A valid
// policy naming a Secret and a TrustRoot that do not exist yet is
// admitted: what lives outside the object is not read at apply. An UPDATE
// that breaks an admitted policy is refused like a CREATE.
func TestPolicyRejectedAtApply(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	prefix := "e2e-rejected-at-apply-"
	images := []string{"registry.example/" + repo(t, "never-used/**")}

	cip := func(name string, spec harness.PolicySpec) *unstructured.Unstructured {
		return harness.ClusterImagePolicy(prefix+name, spec)
	}
	// withAuthorities replaces o's authorities.
	withAuthorities := func(o *unstructured.Unstructured, auths ...any) *unstructured.Unstructured {
		o.Object["spec"].(map[string]any)["authorities"] = auths
		return o
	}
	keyless := func(identity map[string]any) map[string]any {
		return map[string]any{"name": "release", "keyless": map[string]any{
			"trustRoot":  prefix + "not-yet",
			"identities": []any{identity},
		}}
	}
	secretKey := func(name, secret string) map[string]any {
		return map[string]any{"name": name, "key": map[string]any{"secretRef": map[string]any{"name": secret, "key": "cosign.pub"}}}
	}
	trustRoot := func(name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "signgate.dev/v1alpha1",
			"kind":       "TrustRoot",
			"metadata":   map[string]any{"name": prefix + name},
			"spec":       spec,
		}}
	}
	tufSpec := func(refresh string) map[string]any {
		return map[string]any{
			"mirror":          "https://tuf.signgate.invalid",
			"root":            map[string]any{"secretRef": map[string]any{"name": "tuf-root", "key": "root.json"}},
			"refreshInterval": refresh,
		}
	}
	threshold3 := withAuthorities(cip("threshold", harness.PolicySpec{Images: images, Threshold: 3}),
		secretKey("a", "cosign-a"), secretKey("b", "cosign-b"))

	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want string // the compiler's problem
		crd  string // the CRD's rules reject it first, with this message
	}{
		{name: "glob", obj: cip("glob", harness.PolicySpec{Images: []string{"registry.example/[**"}, Keys: []harness.KeyPair{keyA}}),
			want: `images[0]: compile glob "registry.example/[**"`},
		{name: "key not a valid key", obj: withAuthorities(cip("key", harness.PolicySpec{Images: images}),
			map[string]any{"name": "k", "key": map[string]any{"data": badPEM}}),
			want: `authority "k": parse public key`},
		{name: "subjectRegExp", obj: withAuthorities(cip("subject-regexp", harness.PolicySpec{Images: images}),
			keyless(map[string]any{"issuer": "https://issuer.signgate.invalid", "subjectRegExp": "(release"})),
			want: `authority "release": keyless.identities[0]: subjectRegExp "(release": missing closing )`},
		{name: "condition", obj: withAuthorities(cip("condition", harness.PolicySpec{Images: images}),
			mergeMap(keyless(map[string]any{"issuer": "https://issuer.signgate.invalid", "subject": "release"}),
				map[string]any{"attestations": []any{map[string]any{"name": "sbom", "predicateType": "spdxjson", "condition": "predicate.x =="}}})),
			want: `authority "release": attestations[0] (sbom): condition: ERROR`},
		{name: "namespaced condition", obj: withAuthorities(harness.ImagePolicy(ns, "condition", harness.PolicySpec{Images: images}),
			mergeMap(secretKey("k", "cosign"),
				map[string]any{"attestations": []any{map[string]any{"name": "scan", "predicateType": "vuln", "condition": `predicate.scanner.result == `}}})),
			want: `authority "k": attestations[0] (scan): condition: ERROR`},
		{name: "TrustRoot inline", obj: trustRoot("inline", map[string]any{"trustedRoot": map[string]any{"inline": "{not json"}}),
			want: "parse trusted root"},
		{name: "TrustRoot refreshInterval", obj: trustRoot("refresh", map[string]any{"tuf": tufSpec("100ms")}),
			want: "tuf.refreshInterval 100ms: want at least 1s"},
		// The CRD's rules (CEL) come first; the webhook is not asked.
		{name: "threshold", obj: threshold3,
			want: "threshold 3: want between 1 and the number of authorities (2)",
			crd:  "threshold must not exceed the number of authorities"},
		{name: "ImagePolicy static pass", obj: harness.ImagePolicy(ns, "static-pass", harness.PolicySpec{Images: images, Static: "pass"}),
			want: "static.action pass: an ImagePolicy cannot admit images without a signature",
			crd:  "static pass is not allowed in an ImagePolicy"},
		{name: "key not PEM", obj: withAuthorities(cip("key-not-pem", harness.PolicySpec{Images: images}),
			map[string]any{"name": "k", "key": map[string]any{"data": "not a key"}}),
			want: `authority "k": parse public key`,
			crd:  "key.data must be a PEM PUBLIC KEY block"},
		{name: "TrustRoot two sources", obj: trustRoot("two-sources", map[string]any{
			"trustedRoot": map[string]any{"inline": "{}"}, "tuf": tufSpec("1h")}),
			want: "exactly one of trustedRoot or tuf is required",
			crd:  "exactly one of trustedRoot or tuf is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ri, what := policyResource(tc.obj)
			_, err := ri.Create(ctx, tc.obj, metav1.CreateOptions{})
			if err == nil {
				deleteLater(t, ri, tc.obj.GetName())
				t.Fatalf("create %s: admitted, want rejected with %q", what, tc.want)
			}
			if tc.crd != "" {
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.crd) {
					t.Errorf("create %s: %v, want Invalid from the CRD naming %q", what, err, tc.crd)
				}
				// Were the CRD's rule missing, the gate would refuse it too.
				js, jerr := json.Marshal(tc.obj.Object)
				if jerr != nil {
					t.Fatal(jerr)
				}
				if perr := policy.ValidateObject(js); perr == nil || !strings.Contains(perr.Error(), tc.want) {
					t.Errorf("the gate's compiler on %s: %v, want %q", what, perr, tc.want)
				}
				return
			}
			for _, want := range []string{deniedByPolicyWebhook, what + " is invalid: ", tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("create %s: %v, want a denial containing %q", what, err, want)
				}
			}
		})
	}

	// Admitted: a Secret and a TrustRoot named by a policy may come later.
	// The gate reports such a policy invalid in its Ready condition until
	// they exist; images under this one are never used.
	admitted := []*unstructured.Unstructured{
		withAuthorities(harness.ImagePolicy(ns, "later", harness.PolicySpec{Images: images}),
			secretKey("k", "cosign-not-yet"),
			keyless(map[string]any{"issuer": "https://issuer.signgate.invalid", "subject": "release"})),
		withAuthorities(cip("later", harness.PolicySpec{Images: images}),
			secretKey("k", "cosign-not-yet"),
			keyless(map[string]any{"issuer": "https://issuer.signgate.invalid", "subject": "release"})),
	}
	for _, o := range admitted {
		ri, what := policyResource(o)
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Errorf("create %s naming a Secret and a TrustRoot that do not exist yet: %v, want admitted", what, err)
			continue
		}
		deleteLater(t, ri, o.GetName())

		// An UPDATE is checked like a CREATE. Read again on a conflict: the
		// gate writes the policy's status meanwhile.
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			cur, err := ri.Get(ctx, o.GetName(), getOpts)
			if err != nil {
				return err
			}
			auths, _, _ := unstructured.NestedSlice(cur.Object, "spec", "authorities")
			auths[0] = map[string]any{"name": "k", "key": map[string]any{"data": badPEM}}
			if err := unstructured.SetNestedSlice(cur.Object, auths, "spec", "authorities"); err != nil {
				return err
			}
			_, err = ri.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		for _, want := range []string{deniedByPolicyWebhook, what + " is invalid: ", `authority "k": parse public key`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("update %s with a key that is not PEM: %v, want a denial containing %q", what, err, want)
			}
		}
		if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete %s: %v", what, err)
		}
	}
}

// policyResource is the dynamic client for o (a ClusterImagePolicy,
// ImagePolicy or TrustRoot) and o as the gate names it in messages:
// KIND NAME, or KIND NAMESPACE/NAME.
func policyResource(o *unstructured.Unstructured) (dynamic.ResourceInterface, string) {
	gvr := map[string]schema.GroupVersionResource{
		"ClusterImagePolicy": harness.ClusterImagePolicyGVR,
		"ImagePolicy":        harness.ImagePolicyGVR,
		"TrustRoot":          harness.TrustRootGVR,
	}[o.GetKind()]
	if ns := o.GetNamespace(); ns != "" {
		return env.Dynamic.Resource(gvr).Namespace(ns), o.GetKind() + " " + ns + "/" + o.GetName()
	}
	return env.Dynamic.Resource(gvr), o.GetKind() + " " + o.GetName()
}

// deleteLater deletes name through ri when t ends, if it still exists.
func deleteLater(t *testing.T, ri dynamic.ResourceInterface, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if err := ri.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %s: %v", name, err)
		}
	})
}

// mergeMap is a with b's keys added.
func mergeMap(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}
