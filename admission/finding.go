package admission

import (
	"context"
	"sort"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/policy"
)

// Finding is one reason behind an answer, as a value: the line the webhook
// shows (Message, byte for byte) and what it is about. Gate.ValidateFindings
// and Gate.MutateFindings return them; the webhooks' Handler logs and
// counts them.
type Finding struct {
	// Severity is where the line went: SeverityDeny (the denial's
	// message), SeverityRetry (the message of an undecided answer, or of a
	// denial that also has definite violations), SeverityWarn (a warning)
	// or SeverityAudit (an audit annotation, AuditKey).
	Severity Severity
	// Code is the stable reason code: one of the Code constants.
	Code Code
	// Field is the field path the finding is about, in the style of
	// Kubernetes error messages ("spec.containers[0].image"); "" when it is
	// about the whole object or namespace.
	Field string
	// Image is the image reference as written, for image findings.
	Image string
	// Policy names the policy the finding is about: "ClusterImagePolicy
	// corp", "ImagePolicy team-a/ci"; for Pod Security, the level
	// (`PodSecurity "restricted:latest"`) is in the message instead.
	Policy string
	// Authorities are the names of the authorities the policy trusts, for
	// signature findings.
	Authorities []string
	// Check is the hardening check ("runtimeClass", …) of a hardening
	// finding.
	Check string
	// AuditKey is the audit annotation key (without the webhook prefix the
	// API server adds) of an audit finding.
	AuditKey string
	// Message is the exact line the webhook returns.
	Message string
}

// Severity is where a finding's line goes in the answer.
type Severity string

// The severities, strongest first.
const (
	SeverityDeny  Severity = "deny"
	SeverityRetry Severity = "retry"
	SeverityWarn  Severity = "warn"
	SeverityAudit Severity = "audit"
)

func (s Severity) rank() int {
	switch s {
	case SeverityDeny:
		return 0
	case SeverityRetry:
		return 1
	case SeverityWarn:
		return 2
	}
	return 3
}

// Code is a stable reason code. The set is closed: every line either
// webhook writes has one of these codes. Codes are never renamed
// (docs/check-output.md lists them); new ones may be added.
type Code string

// Reason codes of both webhooks.
const (
	// CodeOperationNotReviewed: the review is not a CREATE or UPDATE
	// (both webhooks).
	CodeOperationNotReviewed Code = "operation-not-reviewed"
	// CodeObjectInvalid: the object cannot be decoded or has no pod spec
	// where its kind has one (validate: deny; mutate: warn, nothing
	// pinned).
	CodeObjectInvalid Code = "object-invalid"
	// CodeNamespaceMissing: the request names no namespace (validate).
	CodeNamespaceMissing Code = "namespace-missing"
	// CodeNamespaceLookup: the namespace's labels cannot be read now
	// (validate, retry).
	CodeNamespaceLookup Code = "namespace-lookup"
	// CodeCredentialsLookup: the namespace's registry credentials (pull
	// secrets, service account) cannot be read now (validate: retry;
	// mutate: warn, not pinned).
	CodeCredentialsLookup Code = "credentials-lookup"
	// CodeImageEmpty: an image field is empty (validate).
	CodeImageEmpty Code = "image-empty"
	// CodeImageInvalid: an image is not a valid reference (validate: deny;
	// mutate: warn, not pinned).
	CodeImageInvalid Code = "image-invalid"
	// CodeImageUnpinned: a pod image has no digest (validate; retry when
	// its tag cannot be resolved because of registry trouble).
	CodeImageUnpinned Code = "image-unpinned"
	// CodeImageUnmatched: no policy covers the image (validate, by
	// unmatchedImages: deny or warn).
	CodeImageUnmatched Code = "image-unmatched"
	// CodePinFailed: the mutating webhook could not resolve a tag to pin
	// it (mutate, warn), or could not write its patch.
	CodePinFailed Code = "pin-failed"
	// CodePolicyInvalid: a policy that applies to the image is invalid
	// (validate, deny).
	CodePolicyInvalid Code = "policy-invalid"
	// CodeStaticFail: a policy rejects the image statically (validate, by
	// the policy's mode).
	CodeStaticFail Code = "static-fail"
	// CodeNotEnoughSignatures: fewer authorities verified than the policy's
	// threshold (validate, by the policy's mode).
	CodeNotEnoughSignatures Code = "not-enough-signatures"
	// CodeNotVerified: no valid signature of the policy's authorities
	// (validate, by the policy's mode).
	CodeNotVerified Code = "not-verified"
	// CodeAttestation: the image is signed, but an attestation an
	// authority requires is missing, about another image, or its
	// condition is false or fails (validate, by the policy's mode).
	CodeAttestation Code = "attestation-not-satisfied"
	// CodeRegistryAccessDenied: the registry refused signgate's
	// credentials while verifying (validate, by the policy's mode).
	CodeRegistryAccessDenied Code = "registry-access-denied"
	// CodeRegistryUndecided: registry trouble or the deadline left a
	// verification undecided (validate: retry under enforce, else by the
	// policy's mode).
	CodeRegistryUndecided Code = "registry-undecided"
	// CodeRegistryError: the registry gave an answer signgate cannot use;
	// fails closed (validate, by the policy's mode).
	CodeRegistryError Code = "registry-error"
	// CodeRegistryRefused: one of the verifier's own rules refused the
	// registry (the network guard, plain HTTP); the message names the
	// setting that lifts it.
	CodeRegistryRefused Code = "registry-refused"
	// CodePodSecurityLevels: the namespace's Pod Security labels are
	// invalid; the fail-safe levels apply (validate, warn).
	CodePodSecurityLevels Code = "pod-security-levels"
	// CodePodSecurity: the pod violates the namespace's Pod Security
	// level (validate: deny, warn or audit by level).
	CodePodSecurity Code = "pod-security"
	// CodeHardening: a hardening check fails (validate, by the check's
	// mode); Check names the check.
	CodeHardening Code = "hardening"
	// CodeOfflineNotPinned: an offline gate (Options.Offline) did not
	// resolve an image the mutating webhook would pin (mutate, warn).
	CodeOfflineNotPinned Code = "offline-not-pinned"
	// CodeOfflineNotVerified: an offline gate did not check the
	// signatures a policy requires of an image (validate, warn).
	CodeOfflineNotVerified Code = "offline-not-verified"
)

// Codes lists every reason code, in the order above.
var Codes = []Code{
	CodeOperationNotReviewed, CodeObjectInvalid, CodeNamespaceMissing, CodeNamespaceLookup, CodeCredentialsLookup,
	CodeImageEmpty, CodeImageInvalid, CodeImageUnpinned, CodeImageUnmatched, CodePinFailed,
	CodePolicyInvalid, CodeStaticFail, CodeNotEnoughSignatures, CodeNotVerified, CodeAttestation,
	CodeRegistryAccessDenied, CodeRegistryUndecided, CodeRegistryError, CodeRegistryRefused,
	CodePodSecurityLevels, CodePodSecurity, CodeHardening,
	CodeOfflineNotPinned, CodeOfflineNotVerified,
}

// ValidateFindings is Validate that also returns the findings behind the
// answer, sorted (severity, then message) and de-duplicated. The response
// is the one Validate returns. Building findings costs allocations that
// Validate does not pay; the webhook's Handler pays them, for its log line
// and signgate_policy_findings_total.
func (g *Gate) ValidateFindings(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []Finding) {
	v := g.validateWith(ctx, req, true)
	return v.resp, sortedFindings(v.findings)
}

// MutateFindings is Mutate that also returns the findings behind its
// warnings (or its denial of a review outside the protocol), sorted and
// de-duplicated like ValidateFindings'.
func (g *Gate) MutateFindings(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, []Finding) {
	v := g.mutateWith(ctx, req, true)
	return v.resp, sortedFindings(v.findings)
}

// sortedFindings sorts by severity, then message, then code, and drops
// findings equal to the one before: the lines of the answer are
// de-duplicated the same way (sortedLines).
func sortedFindings(list []Finding) []Finding {
	if len(list) == 0 {
		return nil
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if ra, rb := a.Severity.rank(), b.Severity.rank(); ra != rb {
			return ra < rb
		}
		if a.AuditKey != b.AuditKey {
			return a.AuditKey < b.AuditKey
		}
		if a.Message != b.Message {
			return a.Message < b.Message
		}
		return a.Code < b.Code
	})
	out := list[:1]
	for _, f := range list[1:] {
		last := out[len(out)-1]
		if f.Severity == last.Severity && f.AuditKey == last.AuditKey && f.Message == last.Message && f.Code == last.Code {
			continue
		}
		out = append(out, f)
	}
	return out
}

// record adds d's line to the answer under severity sev (auditKey for
// SeverityAudit) and, when findings are wanted, d itself.
func (f *findings) record(sev Severity, auditKey string, d Finding) {
	switch sev {
	case SeverityDeny:
		f.deny = append(f.deny, d.Message)
	case SeverityRetry:
		f.retry = append(f.retry, d.Message)
	case SeverityWarn:
		f.warn = append(f.warn, d.Message)
	default:
		if f.audit == nil {
			f.audit = map[string][]string{}
		}
		f.audit[auditKey] = append(f.audit[auditKey], d.Message)
	}
	if f.structured {
		d.Severity = sev
		if sev == SeverityAudit {
			d.AuditKey = auditKey
		}
		f.list = append(f.list, d)
	}
}

// modeSeverity is where a line of a policy or check with mode m goes:
// enforce, and anything unknown, fails safe.
func modeSeverity(m policy.Mode) Severity {
	switch m {
	case policy.ModeWarn:
		return SeverityWarn
	case policy.ModeAudit:
		return SeverityAudit
	}
	return SeverityDeny
}

// one is the findings of an answer with a single line (the early answers).
func one(structured bool, sev Severity, d Finding) findings {
	f := findings{structured: structured}
	f.record(sev, "", d)
	return f
}
