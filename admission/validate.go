package admission

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/policy/v1alpha1"
)

// Audit annotation keys (the API server prefixes the webhook name).
const (
	auditImagePolicy = "image-policy-audit"
	auditPodSecurity = "pod-security-audit"
	auditHardening   = "hardening-audit"
)

// findings collect what one review found, by outcome.
type findings struct {
	deny  []string            // definite violations
	retry []string            // undecided: registry trouble, deadline
	warn  []string            // warnings for the client
	audit map[string][]string // audit annotation key → lines
	// structured asks for list: every line also as a Finding.
	// ValidateFindings, MutateFindings, DryRun and the Handler (for its
	// log line and metrics) ask; Validate and Mutate do not pay for it.
	structured bool
	list       []Finding
}

// add routes a finding by the mode of whatever produced it.
func (f *findings) add(mode policy.Mode, auditKey string, d Finding) {
	f.record(modeSeverity(mode), auditKey, d)
}

// response turns the findings into the answer: any definite violation
// denies; otherwise anything undecided denies with "retry"; otherwise the
// request is admitted with its warnings. Audit annotations go with every
// answer.
func (f *findings) response() *admissionv1.AdmissionResponse {
	var r *admissionv1.AdmissionResponse
	switch {
	case len(f.deny) > 0:
		r = denied(append(f.deny, f.retry...))
	case len(f.retry) > 0:
		r = undecided(f.retry)
	default:
		r = allowed(nil)
	}
	r.Warnings = sortedLines(f.warn)
	for k, lines := range f.audit {
		if r.AuditAnnotations == nil {
			r.AuditAnnotations = map[string]string{}
		}
		r.AuditAnnotations[k] = joinLines(lines)
	}
	return r
}

// validate re-derives everything from the final object (docs/admission.md):
// digests, signatures, Pod Security, hardening. Nothing on the object
// (annotations, labels) is trusted; namespace labels come from the policy
// source.
func (g *Gate) validate(ctx context.Context, req *admissionv1.AdmissionRequest) verdict {
	return g.validateWith(ctx, req, false)
}

// validateWith is validate, with the findings as values when structured.
func (g *Gate) validateWith(ctx context.Context, req *admissionv1.AdmissionRequest, structured bool) verdict {
	if !evaluated(req.Operation) {
		return oneVerdict(nil, one(structured, SeverityDeny, Finding{Code: CodeOperationNotReviewed, Message: outsideProtocol(req.Operation)}))
	}
	gk := requestKind(req)
	if gk.group == v1alpha1.GroupVersion.Group {
		return g.validatePolicy(req, structured)
	}
	cfg := g.config.Current()
	if g.exempt(cfg, req.Namespace) {
		return verdict{resp: allowed(nil)}
	}
	pod, err := extractPod(gk, req.Object.Raw)
	if err != nil {
		return oneVerdict(nil, one(structured, SeverityDeny, Finding{Code: CodeObjectInvalid, Message: "cannot evaluate the object: " + err.Error()}))
	}
	fields := policy.Images(pod.Spec)
	v := verdict{images: imageStrings(fields)}
	if req.Operation == admissionv1.Update && !securityRelevantUpdate(gk, req.OldObject.Raw, pod) {
		v.resp = allowed(nil) // nothing that was admitted before has changed
		return v
	}
	if req.Namespace == "" {
		return oneVerdict(v.images, one(structured, SeverityDeny, Finding{Code: CodeNamespaceMissing,
			Message: "the request names no namespace; signgate evaluates namespaced pods and workloads only"}))
	}
	snap := g.policies.Snapshot()
	labels, err := snap.Namespace(req.Namespace)
	if err != nil {
		return oneVerdict(v.images, one(structured, SeverityRetry, Finding{Code: CodeNamespaceLookup,
			Message: withRetry(fmt.Sprintf("cannot read namespace %s: %s", req.Namespace, oneLine(err.Error())))}))
	}
	rd, err := g.readsFor(ctx, req.Namespace, pod.Spec)
	if err != nil {
		return oneVerdict(v.images, one(structured, SeverityRetry, Finding{Code: CodeCredentialsLookup,
			Message: withRetry(fmt.Sprintf("cannot read the registry credentials of namespace %s: %s", req.Namespace, oneLine(err.Error())))}))
	}
	e := &evaluation{gate: g, cfg: cfg, req: req, pod: pod, labels: labels, snap: snap, reads: rd}
	e.f.structured = structured
	e.images(ctx, fields)
	e.podSecurity()
	e.hardening()
	v.resp = e.f.response()
	v.findings = e.f.list
	return v
}

// oneVerdict is the verdict of an answer decided before the evaluation.
func oneVerdict(images []string, f findings) verdict {
	return verdict{resp: f.response(), images: images, findings: f.list}
}

// evaluation is the state of one validating review.
type evaluation struct {
	gate   *Gate
	cfg    *policy.Config
	req    *admissionv1.AdmissionRequest
	pod    podTemplate
	labels map[string]string
	snap   policy.Snapshot
	reads  reads // the registries as this review reads them
	f      findings
}

// enforceMode is the mode of an enforce-level Pod Security or hardening
// finding: workload templates follow podSecurity.workloads.
func (e *evaluation) enforceMode(m policy.Mode) policy.Mode {
	if m == policy.ModeEnforce && e.pod.Workload && e.cfg.PodSecurity.Workloads == policy.ModeWarn {
		return policy.ModeWarn
	}
	return m
}

// validatePolicy checks a ClusterImagePolicy, ImagePolicy or TrustRoot
// being applied, with the compiler the gate uses (policy.ValidateObject):
// a bad key, glob, regular expression or CEL condition is rejected at
// apply time with the compiler's message. Only the object's own content
// is checked: the Secrets and TrustRoots it names may come later.
func (g *Gate) validatePolicy(req *admissionv1.AdmissionRequest, structured bool) verdict {
	if err := policy.ValidateObject(req.Object.Raw); err != nil {
		return oneVerdict(nil, one(structured, SeverityDeny, Finding{Code: CodePolicyInvalid,
			Message: fmt.Sprintf("%s %s is invalid: %s", req.Kind.Kind, objectName(req), err)}))
	}
	return verdict{resp: allowed(nil)}
}

// objectName is the request's object as kubectl names it: NAMESPACE/NAME
// or NAME.
func objectName(req *admissionv1.AdmissionRequest) string {
	if req.Namespace != "" {
		return req.Namespace + "/" + req.Name
	}
	return req.Name
}
