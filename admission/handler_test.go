package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"go.uber.org/goleak"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// nopVerifier fails every registry call: envelope tests must not reach it.
type nopVerifier struct{}

func (nopVerifier) Resolve(context.Context, name.Reference) (name.Digest, error) {
	return name.Digest{}, &verifier.UndecidedError{Op: "resolve", Err: context.Canceled}
}

func (nopVerifier) Verify(_ context.Context, d name.Digest, _ verifier.AuthoritySet) (verifier.Result, error) {
	return verifier.Result{}, &verifier.NotVerifiedError{Digest: d, Reason: "no signatures found"}
}

// emptyPolicies has every namespace and no policy.
type emptyPolicies struct{}

func (emptyPolicies) Snapshot() policy.Snapshot { return emptySnapshot{} }

type emptySnapshot struct{}

func (emptySnapshot) Namespace(string) (map[string]string, error) { return map[string]string{}, nil }
func (emptySnapshot) Requirements(string, map[string]string, imageref.Repo) []policy.Requirement {
	return nil
}

func newTestGate(t testing.TB) *Gate {
	t.Helper()
	g, err := NewGate(Options{Verifier: nopVerifier{}, Policies: emptyPolicies{}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

const podReview = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"team-a","operation":"CREATE","object":%s}}`

// TestEnvelope: whatever arrives, the answer is HTTP 400 with a reason or
// a response that is not an allow, never a panic.
func TestEnvelope(t *testing.T) {
	pod := `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"registry.example.com/a:v1"}]}}`
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		wantBody    string // substring of the body
	}{
		{"GET", http.MethodGet, "application/json", "", http.StatusMethodNotAllowed, "only POST"},
		{"wrong content type", http.MethodPost, "text/plain", strings.Replace(podReview, "%s", pod, 1), http.StatusBadRequest, "content type"},
		{"no content type", http.MethodPost, "", strings.Replace(podReview, "%s", pod, 1), http.StatusBadRequest, "content type"},
		{"empty body", http.MethodPost, "application/json", "", http.StatusBadRequest, "empty"},
		{"not JSON", http.MethodPost, "application/json", "<xml/>", http.StatusBadRequest, "decode AdmissionReview"},
		{"truncated", http.MethodPost, "application/json", strings.Replace(podReview, "%s", pod, 1)[:80], http.StatusBadRequest, "decode AdmissionReview"},
		{"trailing garbage", http.MethodPost, "application/json", strings.Replace(podReview, "%s", pod, 1) + "{}", http.StatusBadRequest, "decode AdmissionReview"},
		{"JSON null", http.MethodPost, "application/json", "null", http.StatusBadRequest, "apiVersion"},
		{"wrong apiVersion", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1"}}`, http.StatusBadRequest, "apiVersion"},
		{"wrong kind", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u1"}}`, http.StatusBadRequest, "kind"},
		{"no request", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest, "no request"},
		{"no uid", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`, http.StatusBadRequest, "no uid"},
		{"over limit", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`, http.StatusBadRequest, "exceeds the limit"},
		{"no object", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"kind":"Pod"},"namespace":"team-a","operation":"CREATE"}}`, http.StatusOK, `"allowed":false`},
		{"null object", http.MethodPost, "application/json", strings.Replace(podReview, "%s", "null", 1), http.StatusOK, `"allowed":false`},
		{"object not an object", http.MethodPost, "application/json", strings.Replace(podReview, "%s", `"pod"`, 1), http.StatusOK, `"allowed":false`},
		{"spec of the wrong type", http.MethodPost, "application/json", strings.Replace(podReview, "%s", `{"spec":[1,2]}`, 1), http.StatusOK, `"allowed":false`},
		{"unknown kind", http.MethodPost, "application/json", strings.Replace(strings.Replace(podReview, "%s", pod, 1), `"kind":"Pod"`, `"kind":"Secret"`, 1), http.StatusOK, `"allowed":false`},
		{"charset parameter", http.MethodPost, "application/json; charset=utf-8", strings.Replace(podReview, "%s", pod, 1), http.StatusOK, `"uid":"u1"`},
	}
	h := NewHandler(newTestGate(t), WebhookValidate, HandlerOptions{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "/validate", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tc.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body %q does not contain %q", rec.Body.String(), tc.wantBody)
			}
		})
	}
}

// TestOverLimitNotRead: a body announced as too large is refused before
// it is read.
func TestOverLimitNotRead(t *testing.T) {
	h := NewHandler(newTestGate(t), WebhookValidate, HandlerOptions{})
	body := &countingReader{}
	req := httptest.NewRequest(http.MethodPost, "/validate", body)
	req.ContentLength = MaxBodyBytes + 1
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || body.n != 0 {
		t.Errorf("status %d after reading %d bytes, want 400 after 0", rec.Code, body.n)
	}
}

type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// panicGate's policy source panics: the handler must answer with a denial.
type panicPolicies struct{}

func (panicPolicies) Snapshot() policy.Snapshot { panic("boom") }

func TestPanicDenies(t *testing.T) {
	g, err := NewGate(Options{Verifier: nopVerifier{}, Policies: panicPolicies{}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(g, WebhookValidate, HandlerOptions{})
	body := strings.Replace(podReview, "%s", `{"spec":{"containers":[{"name":"a","image":"r.example/a@sha256:`+strings.Repeat("a", 64)+`"}]}}`, 1)
	req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("status %d, body %s: %v", rec.Code, rec.Body, err)
	}
	if out.Response.Allowed || out.Response.UID != "u1" || out.Response.Result.Code != http.StatusInternalServerError {
		t.Errorf("response = %+v, want a denial with code 500 and uid u1", out.Response)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		query string
		want  time.Duration
	}{
		{"", 8 * time.Second},
		{"10s", 8 * time.Second},
		{"30s", 24 * time.Second},
		{"60s", 24 * time.Second},
		{"2s", 1500 * time.Millisecond},
		{"1s", 500 * time.Millisecond},
		{"500ms", 250 * time.Millisecond},
		{"garbage", 8 * time.Second},
		{"-3s", 8 * time.Second},
	}
	for _, tc := range tests {
		if got := budget(tc.query); got != tc.want {
			t.Errorf("budget(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
}

// TestDeadline: with a registry that never answers and a verifier that
// would wait hangGuard for it, ?timeout=2s is answered with "timed out,
// retry": only the gate's own budget (1.5s for 2s) can end the review
// first. Once the review has left the verification it started, no
// goroutine is left behind.
func TestDeadline(t *testing.T) {
	e := newEnv(t, configDefault)
	e.reg.SetFault(registrytest.Stall())
	before := goleak.IgnoreCurrent()
	defer func() {
		var err error
		for deadline := time.Now().Add(hangGuard); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if err = goleak.Find(before); err == nil {
				return
			}
		}
		t.Errorf("goroutines left after the review: %v", err)
	}()
	body := e.review(t, "validate-pod-registry-down")
	start := time.Now()
	resp := e.post(t, WebhookValidate, body, "?timeout=2s")
	took := time.Since(start)
	if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, "timed out, retry") {
		t.Errorf("response after %v = %+v, want an undecided denial saying timed out, retry", took, resp.Result)
	}
	t.Logf("answered after %v (budget %v)", took, budget("2s"))
}

// TestMutateThenValidate: the API server's order. Pinning a signed tag
// gives a pod the validating webhook admits, and mutating the pinned pod
// again changes nothing.
func TestMutateThenValidate(t *testing.T) {
	e := newEnv(t, configDefault)
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team-a"},"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},` +
		`"containers":[{"name":"a","image":"` + e.reg.Host + `/team-a/app:v1","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`
	req := func(obj string) *admissionv1.AdmissionRequest {
		return &admissionv1.AdmissionRequest{
			UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "team-a",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(obj)},
		}
	}
	m := e.gate.Mutate(t.Context(), req(pod))
	if !m.Allowed || len(m.Patch) == 0 {
		t.Fatalf("mutate = %+v, want a patch", m)
	}
	var ops []patchOp
	if err := json.Unmarshal(m.Patch, &ops); err != nil || len(ops) != 1 {
		t.Fatalf("patch %s: %v", m.Patch, err)
	}
	pinned := strings.Replace(pod, e.reg.Host+"/team-a/app:v1", ops[0].Value, 1)
	if v := e.gate.Validate(t.Context(), req(pinned)); !v.Allowed {
		t.Errorf("validate pinned pod = %+v, want allowed", v.Result)
	}
	if again := e.gate.Mutate(t.Context(), req(pinned)); len(again.Patch) != 0 {
		t.Errorf("mutating the pinned pod patches again: %s", again.Patch)
	}
	if v := e.gate.Validate(t.Context(), req(pod)); v.Allowed {
		t.Errorf("validate unpinned pod allowed")
	}
}

// notReady is a policy source before its first sync.
type notReady struct{}

func (notReady) Snapshot() policy.Snapshot { return notReadySnapshot{} }

type notReadySnapshot struct{}

func (notReadySnapshot) Namespace(string) (map[string]string, error) { return nil, policy.ErrNotReady }
func (notReadySnapshot) Requirements(string, map[string]string, imageref.Repo) []policy.Requirement {
	return nil
}

func TestPoliciesNotReadyIsUndecided(t *testing.T) {
	g, err := NewGate(Options{Verifier: nopVerifier{}, Policies: notReady{}})
	if err != nil {
		t.Fatal(err)
	}
	req := &admissionv1.AdmissionRequest{
		UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "team-a", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: []byte(`{"spec":{"containers":[{"name":"a","image":"r.example/a:v1"}]}}`)},
	}
	resp := g.Validate(t.Context(), req)
	want := "cannot read namespace team-a: trust policies not loaded yet, retry"
	if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || resp.Result.Message != want {
		t.Errorf("response = %+v, want 503 %q", resp.Result, want)
	}
}

// TestConcurrentReviewsShareVerification: 200 simultaneous reviews of a
// pod with a digest nobody has verified yet cost one verification's worth
// of registry requests, and all are admitted.
func TestConcurrentReviewsShareVerification(t *testing.T) {
	e := newEnv(t, configDefault)
	req, err := DecodeReview(e.review(t, "validate-pod-bundle-signed"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make(chan string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			if r := e.gate.Validate(t.Context(), req); !r.Allowed {
				errs <- r.Result.Message
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("review denied: %s", msg)
	}
	got := e.reg.Requests()
	// One verification's worth, measured: the same review once, alone, on
	// a fresh gate and registry.
	one := newEnv(t, configDefault)
	oneReq, err := DecodeReview(one.review(t, "validate-pod-bundle-signed"))
	if err != nil {
		t.Fatal(err)
	}
	if r := one.gate.Validate(t.Context(), oneReq); !r.Allowed {
		t.Fatalf("a single review denied: %s", r.Result.Message)
	}
	want := one.reg.Requests()
	t.Logf("%d reviews, %d registry requests; one review alone: %d", n, got, want)
	if want == 0 || got != want {
		t.Errorf("%d reviews made %d registry requests, want exactly one verification's worth (%d): %v", n, got, want, e.reg.RequestLog())
	}
}
