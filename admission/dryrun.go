package admission

import (
	"context"
	"fmt"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/policy"
)

// A dry run is what signgate check asks of the gate: an object through
// both webhooks the way the API server sends it, with everything the
// answer rests on. The gate alone knows which kinds it reviews, where
// their images are and what its answers mean; check only reads files and
// prints.

// Kind is how the API server names a kind the webhooks review.
type Kind struct {
	GroupVersionKind     metav1.GroupVersionKind
	GroupVersionResource metav1.GroupVersionResource
}

// KindOf returns how an object of apiVersion and kind is named in a
// review: any version of the group, as v1, the version the webhooks are
// registered for (the API server converts the same way). ok is false for
// a kind the webhooks never see: it has no pod spec.
func KindOf(apiVersion, kind string) (Kind, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return Kind{}, false
	}
	k, ok := kinds[groupKind{gv.Group, kind}]
	if !ok {
		return Kind{}, false
	}
	return Kind{
		GroupVersionKind:     metav1.GroupVersionKind{Group: gv.Group, Version: "v1", Kind: kind},
		GroupVersionResource: metav1.GroupVersionResource{Group: gv.Group, Version: "v1", Resource: k.resource},
	}, true
}

// DryRunCreate returns the CREATE request the API server sends for obj
// (JSON, metadata.namespace set) in namespace, as a dry run: nothing is
// persisted, and the webhooks decide dry runs exactly like other requests
// (docs/admission.md). name is "" for an object named by generateName.
func DryRunCreate(k Kind, namespace, name string, obj []byte, uid types.UID, user string) *admissionv1.AdmissionRequest {
	gvk, gvr := k.GroupVersionKind, k.GroupVersionResource
	dryRun := true
	return &admissionv1.AdmissionRequest{
		UID:             uid,
		Kind:            gvk,
		Resource:        gvr,
		RequestKind:     &gvk,
		RequestResource: &gvr,
		Name:            name,
		Namespace:       namespace,
		Operation:       admissionv1.Create,
		UserInfo:        authenticationv1.UserInfo{Username: user},
		Object:          runtime.RawExtension{Raw: obj},
		DryRun:          &dryRun,
		Options:         runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","dryRun":["All"]}`)},
	}
}

// DryRun is the outcome of one object through both webhooks.
type DryRun struct {
	// Mutate is the mutating webhook's answer.
	Mutate *admissionv1.AdmissionResponse
	// Validate is the validating webhook's answer on the patched object;
	// nil when Mutate denied (the API server stops there).
	Validate *admissionv1.AdmissionResponse
	// Findings are Mutate's findings, then Validate's, each sorted as
	// ValidateFindings sorts them.
	Findings []Finding
	// Images are the images of the object's pod spec, in field order.
	Images []DryRunImage
}

// DryRunImage is one image of a dry run, before and after pinning.
type DryRunImage struct {
	// Field is the image's field path: "spec.containers[0].image".
	Field string
	// Image is the reference as written.
	Image string
	// Pinned is the reference the API server would store, when it has a
	// digest (pinned by the mutating webhook or written so); "" otherwise.
	Pinned string
	// Severity is the strongest severity among the findings about the
	// image (SeverityDeny: it is why the object is denied); "" when there
	// are none.
	Severity Severity
}

// DryRun runs req through the mutating webhook, applies its JSON patch as
// the API server does, and runs the validating webhook on the patched
// object. Each webhook gets its own timeout, as the API server gives each
// its timeoutSeconds. An error is a patch the gate's own object does not
// take: a gate bug, never a decision.
func (g *Gate) DryRun(ctx context.Context, req *admissionv1.AdmissionRequest, timeout time.Duration) (DryRun, error) {
	var out DryRun
	call := func(decide func(context.Context, *admissionv1.AdmissionRequest, bool) verdict, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		v := decide(ctx, req, true)
		out.Findings = append(out.Findings, sortedFindings(v.findings)...)
		return v.resp
	}
	out.Mutate = call(g.mutateWith, req)
	final := req.Object.Raw
	if out.Mutate.Allowed {
		var err error
		if final, err = applyPatch(final, out.Mutate); err != nil {
			return out, err
		}
		patched := *req
		patched.Object = runtime.RawExtension{Raw: final}
		out.Validate = call(g.validateWith, &patched)
	}
	out.Images = g.dryRunImages(requestKind(req), req.Object.Raw, final, out.Findings)
	return out, nil
}

// applyPatch applies a mutating answer's JSON patch.
func applyPatch(obj []byte, r *admissionv1.AdmissionResponse) ([]byte, error) {
	if len(r.Patch) == 0 {
		return obj, nil
	}
	if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
		return nil, fmt.Errorf("mutate: unsupported patch type %v", r.PatchType)
	}
	p, err := jsonpatch.DecodePatch(r.Patch)
	if err != nil {
		return nil, fmt.Errorf("mutate: decode patch: %w", err)
	}
	out, err := p.Apply(obj)
	if err != nil {
		return nil, fmt.Errorf("mutate: apply patch: %w", err)
	}
	return out, nil
}

// dryRunImages pairs the images of the object as written with those of
// the patched object: the patch only replaces image strings, so they line
// up by position. An object the gate cannot decode has none (the
// validating webhook denies it and says why).
func (g *Gate) dryRunImages(gk groupKind, before, after []byte, found []Finding) []DryRunImage {
	pod, err := extractPod(gk, before)
	if err != nil {
		return nil
	}
	var pinned []policy.ImageField
	if final, err := extractPod(gk, after); err == nil {
		pinned = policy.Images(final.Spec)
	}
	var out []DryRunImage
	for i, f := range policy.Images(pod.Spec) {
		img := DryRunImage{Field: f.Path(pod.Prefix), Image: f.Image}
		if i < len(pinned) {
			if _, ok := g.refs.parse(pinned[i].Image).ref.(name.Digest); ok {
				img.Pinned = pinned[i].Image
			}
		}
		for _, d := range found {
			if d.Field == img.Field && (img.Severity == "" || d.Severity.rank() < img.Severity.rank()) {
				img.Severity = d.Severity
			}
		}
		out = append(out, img)
	}
	return out
}
