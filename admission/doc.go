// Package admission decides AdmissionReviews for pods and workloads: the
// mutating side pins images to digests, the validating side verifies
// signatures, Pod Security and hardening on the final object.
//
// Gate holds the decision logic and is usable without HTTP (signgate check
// builds AdmissionRequests from manifests and calls it). Handler is the HTTP
// shell: method, content type, body limit, decoding, deadline, uid, panic
// recovery, one log line and the metrics per review.
//
// Every decision is one of three outcomes: allowed, denied (Result.Code 403)
// or undecided (registry trouble or deadline, Result.Code 503, a denial whose
// message says "retry"). The package never admits what it could not check.
//
// Audit annotations are returned without a prefix ("image-policy-audit",
// "pod-security-audit", "hardening-audit"): the API server prefixes the
// webhook's name, e.g. "validate.signgate.dev/pod-security-audit", and
// rejects keys that already contain a slash.
package admission
