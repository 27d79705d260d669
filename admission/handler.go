package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// MaxBodyBytes is the largest AdmissionReview body read. The API server
// refuses objects over ~3 MiB (etcd's request limit is 1.5 MiB, its own
// request body limit 3 MiB) and an UPDATE review carries the object twice
// plus the envelope, so 7 MiB admits every real review while bounding what
// a hostile client can make the gate buffer.
const MaxBodyBytes = 7 << 20

// Deadline defaults for the ?timeout= query the API server adds (its
// webhook timeoutSeconds: default 10s, at most 30s).
const (
	defaultTimeout = 10 * time.Second
	maxTimeout     = 30 * time.Second
	// timeoutMargin is how much earlier than the API server the gate gives
	// up, so that its "timed out, retry" answer arrives before the API
	// server's own deadline (network, encoding, scheduling).
	timeoutMargin = 500 * time.Millisecond
)

// Webhook names one of the two endpoints.
type Webhook string

const (
	WebhookMutate   Webhook = "mutate"   // POST /mutate: pins images
	WebhookValidate Webhook = "validate" // POST /validate: verifies and checks
)

// HandlerOptions are the optional settings of a Handler.
type HandlerOptions struct {
	// Logger receives one line per admission. Default: discard.
	Logger *slog.Logger
	// Metrics records requests and durations. Default: none.
	Metrics *Metrics
}

// Handler is the HTTP shell around a Gate for one webhook: it checks the
// transport (method, content type, size), decodes the AdmissionReview,
// derives the deadline, calls the Gate, and writes the response with the
// request's uid. It never decides anything itself. Safe for concurrent use.
type Handler struct {
	webhook Webhook
	review  func(context.Context, *admissionv1.AdmissionRequest) verdict
	log     *slog.Logger
	metrics *Metrics
}

// NewHandler returns the handler of webhook w backed by g.
func NewHandler(g *Gate, w Webhook, opts HandlerOptions) *Handler {
	h := &Handler{webhook: w, log: opts.Logger, metrics: opts.Metrics}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	// The findings behind the answer are built as values for the log line
	// and signgate_policy_findings_total: a Finding per line, nothing for
	// an admitted pod without any.
	if w == WebhookMutate {
		h.review = func(ctx context.Context, req *admissionv1.AdmissionRequest) verdict {
			return g.mutateWith(ctx, req, true)
		}
	} else {
		h.review = func(ctx context.Context, req *admissionv1.AdmissionRequest) verdict {
			return g.validateWith(ctx, req, true)
		}
	}
	return h
}

// NewMux serves POST /mutate and POST /validate from g.
func NewMux(g *Gate, opts HandlerOptions) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/mutate", NewHandler(g, WebhookMutate, opts))
	mux.Handle("/validate", NewHandler(g, WebhookValidate, opts))
	return mux
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP handles one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST is supported", http.StatusMethodNotAllowed)
		return
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		h.badRequest(w, r, err)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer putBuf(buf)
	req, err := readReview(w, r, buf)
	if err != nil {
		h.badRequest(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), budget(r.URL.Query().Get("timeout")))
	defer cancel()
	v := h.decide(ctx, req)
	h.respond(w, req.UID, v.resp)
	h.record(req, v, time.Since(start))
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() > 64<<10 { // don't keep a 7 MiB buffer alive for small reviews
		return
	}
	b.Reset()
	bufPool.Put(b)
}

func checkContentType(ct string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("content type %q is not supported, use application/json", ct)
	}
	return nil
}

// readReview reads and decodes the body into an admission.k8s.io/v1
// AdmissionReview request, or says what is wrong with it.
func readReview(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) (*admissionv1.AdmissionRequest, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, fmt.Errorf("request body of %d bytes exceeds the limit of %d", r.ContentLength, MaxBodyBytes)
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if _, err := buf.ReadFrom(body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("request body exceeds the limit of %d bytes", MaxBodyBytes)
		}
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return decodeReview(buf.Bytes())
}

// DecodeReview decodes an admission.k8s.io/v1 AdmissionReview and returns
// its request. It fails on anything but a well-formed review with a request
// and a uid; the object itself is checked by the Gate. The request does not
// share memory with body.
func DecodeReview(body []byte) (*admissionv1.AdmissionRequest, error) {
	req, err := decodeReview(body)
	if err != nil {
		return nil, err
	}
	req.Object.Raw = bytes.Clone(req.Object.Raw)
	req.OldObject.Raw = bytes.Clone(req.OldObject.Raw)
	return req, nil
}

// decodeReview is DecodeReview without the copies: the request's
// Object.Raw and OldObject.Raw are sub-slices of body, valid as long as
// body is (the handler's pooled buffer outlives the review). The objects
// are scanned once here and decoded once, case-sensitively, by the Gate
// (extractPod); copying them first bought nothing.
func decodeReview(body []byte) (*admissionv1.AdmissionRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("request body is empty")
	}
	var review reviewEnvelope
	if err := json.Unmarshal(body, &review); err != nil {
		// Say it as decoding the AdmissionReview type says it: a type
		// error names the Go struct and the path through it.
		var as admissionv1.AdmissionReview
		if err2 := json.Unmarshal(body, &as); err2 != nil {
			err = err2
		}
		return nil, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	if gv := review.APIVersion; gv != admissionv1.SchemeGroupVersion.String() {
		return nil, fmt.Errorf("apiVersion %q is not supported, use %s", gv, admissionv1.SchemeGroupVersion)
	}
	if review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("kind %q is not supported, use AdmissionReview", review.Kind)
	}
	if review.Request == nil {
		return nil, errors.New("AdmissionReview has no request")
	}
	req := &review.Request.AdmissionRequest
	if req.UID == "" {
		return nil, errors.New("AdmissionReview request has no uid")
	}
	req.Object.Raw = review.Request.Object
	req.OldObject.Raw = review.Request.OldObject
	return req, nil
}

// reviewEnvelope is admissionv1.AdmissionReview decoded exactly as
// encoding/json decodes it (same fields, same key matching, same errors;
// response is still decoded), except that the request's object and
// oldObject are kept as sub-slices of the body instead of copies: the
// shallower fields below hide the embedded ones of the same name.
type reviewEnvelope struct {
	admissionv1.AdmissionReview
	Request *requestEnvelope `json:"request,omitempty"`
}

type requestEnvelope struct {
	admissionv1.AdmissionRequest
	Object    rawObject `json:"object,omitempty"`
	OldObject rawObject `json:"oldObject,omitempty"`
}

// rawObject is runtime.RawExtension's UnmarshalJSON without the copy: a
// null leaves it as it was, anything else is kept as given.
type rawObject []byte

func (r *rawObject) UnmarshalJSON(in []byte) error {
	if bytes.Equal(in, []byte("null")) {
		return nil
	}
	*r = in[:len(in):len(in)] // an append must not write into the body
	return nil
}

// budget turns the API server's ?timeout= into the gate's own deadline: a
// safety margin before it (the smaller of timeout-0.5s and 80% of it, never
// under half of it), so "timed out, retry" always beats the API server.
func budget(q string) time.Duration {
	t, err := time.ParseDuration(q)
	if err != nil || t <= 0 {
		t = defaultTimeout
	}
	t = min(t, maxTimeout)
	return max(min(t-timeoutMargin, t*8/10), t/2)
}

// decide calls the Gate and turns a panic into a denial: a bug must never
// admit a pod nor drop the connection.
func (h *Handler) decide(ctx context.Context, req *admissionv1.AdmissionRequest) (v verdict) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic in admission", "webhook", h.webhook, "uid", req.UID, "panic", p, "stack", string(debug.Stack()))
			v = verdict{resp: errored(fmt.Sprintf("internal error in signgate %s webhook, retry; if it persists report it", h.webhook))}
		}
	}()
	v = h.review(ctx, req)
	if v.resp == nil {
		v.resp = errored("internal error: no decision")
	}
	return v
}

// respond writes resp with the request's uid: the one place the uid is set.
// A validating response never carries a patch.
func (h *Handler) respond(w http.ResponseWriter, uid types.UID, resp *admissionv1.AdmissionResponse) {
	resp.UID = uid
	if h.webhook == WebhookValidate {
		resp.Patch, resp.PatchType = nil, nil
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		h.log.Warn("write admission response", "webhook", h.webhook, "uid", uid, "err", err)
	}
}

func (h *Handler) badRequest(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Warn("bad admission request", "webhook", h.webhook, "remote", r.RemoteAddr, "err", err)
	h.metrics.observeAdmission(string(h.webhook), "", "", "bad_request", 0)
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// record writes the one log line and the metrics of a review.
func (h *Handler) record(req *admissionv1.AdmissionRequest, v verdict, d time.Duration) {
	decision := Decision(v.resp)
	h.metrics.observeAdmission(string(h.webhook), operationLabel(req.Operation), kindLabel(req), decision, d)
	attrs := []slog.Attr{
		slog.String("webhook", string(h.webhook)),
		slog.String("uid", string(req.UID)),
		slog.String("namespace", req.Namespace),
		slog.String("name", req.Name),
		slog.String("kind", kindString(req)),
		slog.String("operation", string(req.Operation)),
		slog.String("decision", decision),
		slog.Any("images", v.images),
		slog.Float64("duration_seconds", d.Seconds()),
	}
	if !v.resp.Allowed && v.resp.Result != nil {
		attrs = append(attrs, slog.String("reason", v.resp.Result.Message))
	}
	list := sortedFindings(v.findings)
	if logged, omitted := loggedFindings(list); len(logged) > 0 {
		attrs = append(attrs, slog.Any("findings", logged))
		if omitted > 0 {
			attrs = append(attrs, slog.Int("findingsOmitted", omitted))
		}
	}
	dryRun := req.DryRun != nil && *req.DryRun
	if dryRun {
		attrs = append(attrs, slog.Bool("dryRun", true))
	}
	// Findings are counted once per review the API server admits or
	// denies: by the validating webhook, which judges the final object
	// (the mutating webhook's warnings come back from it as denials), and
	// not for dry runs, which tools such as server-side diffs send again
	// and again for one change.
	if h.webhook == WebhookValidate && !dryRun {
		h.metrics.observeFindings(list)
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "admission", attrs...)
}

// Bounds of the findings attribute of the log line.
const (
	maxLoggedFindings = 20  // entries; the rest are counted in findingsOmitted
	maxLoggedField    = 256 // bytes of each entry's field
)

// loggedFinding is a finding as the log line shows it: what it is about,
// never its message (the denials are in reason; registry text stays out).
type loggedFinding struct {
	Mode   string `json:"mode"`
	Code   Code   `json:"code"`
	Policy string `json:"policy"`
	Field  string `json:"field,omitempty"`
	Image  string `json:"image,omitempty"`
	Check  string `json:"check,omitempty"`
}

// loggedFindings returns the warn and audit findings of list (the
// would-be denials of policies and checks not enforced, and the other
// warnings), at most maxLoggedFindings of them, and how many more there
// are. Denials are left out: reason has them.
func loggedFindings(list []Finding) (out []loggedFinding, omitted int) {
	for _, f := range list {
		if f.Severity != SeverityWarn && f.Severity != SeverityAudit {
			continue
		}
		if len(out) == maxLoggedFindings {
			omitted++
			continue
		}
		name, _ := findingPolicy(f)
		out = append(out, loggedFinding{
			Mode:   findingMode(f.Severity),
			Code:   f.Code,
			Policy: clip(name, maxLoggedField),
			Field:  clip(f.Field, maxLoggedField),
			Image:  clip(f.Image, maxLoggedField),
			Check:  clip(f.Check, maxLoggedField),
		})
	}
	return out, omitted
}

// clip cuts s to at most n bytes plus "…", at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func kindString(req *admissionv1.AdmissionRequest) string {
	if req.SubResource != "" {
		return req.Kind.Kind + "/" + req.SubResource
	}
	return req.Kind.Kind
}
