package admission

import (
	"context"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/policy"
)

// FuzzDecodeReview feeds arbitrary bodies to the decoder and whatever
// decodes to both webhooks (outside the handler's panic recovery): no
// panic, always an answer, and never an allow for a created object whose
// images could not be verified (nopVerifier verifies nothing, no policy
// matches, unmatchedImages is deny), nor for any operation but CREATE and
// UPDATE. Seeds: testdata/fuzz/FuzzDecodeReview.
func FuzzDecodeReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"namespace":"n","operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"r.example/a:v1"}]}}}}`))
	for _, op := range []string{"create", "DELETE", "CONNECT", "PATCH", ""} {
		f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"namespace":"n","operation":"` + op + `","object":{"spec":{"containers":[{"name":"a","image":"r.example/a:v1"}]}}}}`))
	}
	g := newTestGate(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeReview(body)
		if err != nil {
			return
		}
		if req.UID == "" {
			t.Fatal("decoded a request without uid")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m := g.mutate(ctx, req)
		if m.resp == nil {
			t.Fatal("mutate gave no response")
		}
		v := g.validate(ctx, req)
		if v.resp == nil {
			t.Fatal("validate gave no response")
		}
		if v.resp.Allowed && req.Operation == admissionv1.Create && req.Namespace != "" && hasImages(req) {
			t.Fatalf("allowed a created object with unverifiable images: %s", body)
		}
		if op := req.Operation; op != admissionv1.Create && op != admissionv1.Update && (m.resp.Allowed || v.resp.Allowed) {
			t.Fatalf("allowed operation %q, outside the protocol (mutate %v, validate %v): %s", req.Operation, m.resp.Allowed, v.resp.Allowed, body)
		}
	})
}

// hasImages reports whether the request's object has an image the gate
// would have to verify.
func hasImages(req *admissionv1.AdmissionRequest) bool {
	pod, err := extractPod(requestKind(req), req.Object.Raw)
	return err == nil && len(policy.Images(pod.Spec)) > 0
}
