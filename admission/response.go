package admission

import (
	"net/http"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each constructor returns a fresh response; none is shared, so callers may
// add warnings or annotations. The uid is set by the caller in one place
// (Handler.respond or the CLI), never here.

// allowed admits with optional warnings.
func allowed(warnings []string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed:  true,
		Result:   &metav1.Status{Code: http.StatusOK},
		Warnings: warnings,
	}
}

// patched admits with a JSON patch (nil or empty patch: plain allowed).
func patched(patch []byte, warnings []string) *admissionv1.AdmissionResponse {
	r := allowed(warnings)
	if len(patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		r.Patch = patch
		r.PatchType = &pt
	}
	return r
}

// denied rejects with one sorted line per reason.
func denied(reasons []string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusForbidden,
			Reason:  metav1.StatusReasonForbidden,
			Message: joinLines(reasons),
		},
	}
}

// undecided rejects because the answer is not known yet (registry trouble,
// deadline): every reason says what to retry. 503 tells clients and
// controllers that trying again may succeed.
func undecided(reasons []string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusServiceUnavailable,
			Reason:  metav1.StatusReasonServiceUnavailable,
			Message: joinLines(reasons),
		},
	}
}

// errored rejects after an internal error (a bug, e.g. a recovered panic).
func errored(msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusInternalServerError,
			Reason:  metav1.StatusReasonInternalError,
			Message: msg,
		},
	}
}

// Decision names the outcome of a response for logs and metrics:
// "allowed", "denied", "undecided" or "error".
func Decision(r *admissionv1.AdmissionResponse) string {
	switch {
	case r == nil:
		return "error"
	case r.Allowed:
		return "allowed"
	case r.Result != nil && r.Result.Code == http.StatusServiceUnavailable:
		return "undecided"
	case r.Result != nil && r.Result.Code == http.StatusInternalServerError:
		return "error"
	default:
		return "denied"
	}
}

// joinLines sorts and de-duplicates lines and joins them with newlines, so
// a message is stable whatever order the checks finished in.
func joinLines(lines []string) string {
	return strings.Join(sortedLines(lines), "\n")
}

// sortedLines sorts and de-duplicates lines; nil when there are none, so
// an answer without warnings has no warnings field.
func sortedLines(lines []string) []string {
	if len(lines) == 0 {
		return nil
	}
	s := append([]string(nil), lines...)
	sort.Strings(s)
	out := s[:1]
	for _, l := range s[1:] {
		if l != out[len(out)-1] {
			out = append(out, l)
		}
	}
	return out
}
