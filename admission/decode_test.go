package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
)

// TestDecodeReviewAsAdmissionReview: the handler's decoder (object and
// oldObject kept as sub-slices of the body) accepts, rejects and decodes
// exactly what decoding an admissionv1.AdmissionReview with encoding/json
// does: every review of testdata/reviews, the fuzz corpus, and bodies on
// the edges of key matching, null and repeated objects.
func TestDecodeReviewAsAdmissionReview(t *testing.T) {
	const pre = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"namespace":"n","operation":"UPDATE",`
	bodies := map[string][]byte{
		"null objects":       []byte(pre + `"object":null,"oldObject":null}}`),
		"object then null":   []byte(pre + `"object":{"spec":{}},"object":null}}`),
		"object twice":       []byte(pre + `"object":{"a":1},"object":{"b":2}}}`),
		"keys in other case": []byte(pre + `"Object":{"spec":{}},"OLDOBJECT":{"x":[1]}},"Request":{"uid":"v"}}`),
		"object of a string": []byte(pre + `"object":"x","oldObject":[1,2]}}`),
		"response typed":     []byte(pre + `"object":{}},"response":{"allowed":"yes"}}`),
		"dry run":            []byte(pre + `"object":{"spec":{}},"dryRun":true,"options":{"dryRun":["All"]}}}`),
		"no object":          []byte(pre + `"oldObject":{}}}`),
		"whitespace":         []byte(" \n" + pre + `"object" : { "spec" : { } } } } ` + "\n"),
		"invalid":            []byte(pre + `"object":{"spec":}}}`),
		"uid typed":          []byte(pre + `"uid":5,"object":{}}}`),
		"apiVersion typed":   []byte(`{"apiVersion":1,"kind":"AdmissionReview"}`),
		"request typed":      []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":[]}`),
	}
	e := newEnv(t, configDefault)
	files, err := filepath.Glob(filepath.Join("testdata", "reviews", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no reviews: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		bodies[name] = e.review(t, name)
	}
	corpus, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodeReview", "*"))
	if err != nil || len(corpus) == 0 {
		t.Fatalf("no fuzz corpus: %v", err)
	}
	for _, f := range corpus {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
		lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		bodies["fuzz "+filepath.Base(f)] = []byte(s)
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			want, wantErr := decodeAsAdmissionReview(body)
			orig := bytes.Clone(body)
			got, gotErr := decodeReview(body)
			if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
				t.Fatalf("error = %v, want %v", gotErr, wantErr)
			}
			if wantErr != nil {
				return
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request differs (-want +got):\n%s", diff)
			}
			copied, err := DecodeReview(body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, copied); diff != "" {
				t.Errorf("DecodeReview differs (-want +got):\n%s", diff)
			}
			// An append to the sub-slices never writes into the body.
			_ = append(got.Object.Raw, "xxxxxxxx"...)
			_ = append(got.OldObject.Raw, "xxxxxxxx"...)
			if !bytes.Equal(body, orig) {
				t.Error("appending to the object wrote into the body")
			}
		})
	}
}

// decodeAsAdmissionReview is the decoder before sub-slices: the
// AdmissionReview type itself, its objects copied by RawExtension.
func decodeAsAdmissionReview(body []byte) (*admissionv1.AdmissionRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeReview(body) // the same check, before any decoding
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" || review.Request == nil || review.Request.UID == "" {
		return decodeReview(body) // the same checks; their errors must come out
	}
	return review.Request, nil
}
