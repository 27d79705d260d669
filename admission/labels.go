package admission

import (
	"strings"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/policy"
)

// Metric label values derived from a review come from a closed set: the
// request is written by whoever reaches the port, and every distinct label
// value is a series /metrics keeps for the life of the process.

// otherLabel stands for every value outside a closed set.
const otherLabel = "other"

// operationLabel is op if it is an operation of the admission API, else
// "other".
func operationLabel(op admissionv1.Operation) string {
	switch op {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
		return string(op)
	}
	return otherLabel
}

// kindLabel is the request's kind if it is one the gate evaluates (pods and
// the workloads with a pod template, in their API groups), else "other".
func kindLabel(req *admissionv1.AdmissionRequest) string {
	if _, ok := kinds[requestKind(req)]; ok {
		return req.Kind.Kind
	}
	return otherLabel
}

// Policy label values of signgate_policy_findings_total that are not
// policies anyone can create: the set is closed.
const (
	noPolicyLabel    = "none"        // a finding about no policy
	podSecurityLabel = "PodSecurity" // the namespace's Pod Security levels
)

// maxPolicyLabels bounds the ClusterImagePolicy and ImagePolicy values of
// the policy label: tenants can create ImagePolicies without limit.
const maxPolicyLabels = 256

// findingPolicy names what a finding is about: ClusterImagePolicy/<name>,
// ImagePolicy/<namespace>/<name>, PodSecurity, hardening/<check>, none, or
// other for a requirement that is no single policy (trust policies not
// loaded yet). closed says the name comes from a closed set; the others
// are bounded by policyLabels.
func findingPolicy(f Finding) (name string, closed bool) {
	switch {
	case f.Code == CodePodSecurity || f.Code == CodePodSecurityLevels:
		return podSecurityLabel, true
	case f.Code == CodeHardening:
		switch policy.HardeningCheck(f.Check) {
		case policy.CheckReadOnlyRootFilesystem, policy.CheckResourceLimits, policy.CheckRuntimeClass:
			return "hardening/" + f.Check, true
		}
		return "hardening/" + f.Check, false
	case f.Policy == "":
		return noPolicyLabel, true
	}
	// Requirement.Policy is "ClusterImagePolicy corp" or "ImagePolicy
	// team-a/ci".
	if kind, rest, ok := strings.Cut(f.Policy, " "); ok && (kind == policy.KindClusterImagePolicy || kind == policy.KindImagePolicy) {
		return kind + "/" + rest, false
	}
	return otherLabel, true
}

// findingMode is the mode label of a finding: where its line went, as the
// mode that sends it there. A retry is a denial (undecided under enforce,
// or the gate's own lookups).
func findingMode(s Severity) string {
	switch s {
	case SeverityWarn:
		return string(policy.ModeWarn)
	case SeverityAudit:
		return string(policy.ModeAudit)
	}
	return string(policy.ModeEnforce)
}

// policyLabels bounds the policy label: the first maxPolicyLabels distinct
// policy names keep their own value for the life of the process, every
// later one is "other". Closed names are never counted against the bound.
// Safe for concurrent use.
type policyLabels struct {
	mu    sync.Mutex
	limit int
	seen  map[string]struct{}
}

func newPolicyLabels(limit int) *policyLabels {
	return &policyLabels{limit: limit, seen: map[string]struct{}{}}
}

// label returns the policy label of f.
func (p *policyLabels) label(f Finding) string {
	name, closed := findingPolicy(f)
	if closed {
		return name
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[name]; ok {
		return name
	}
	if len(p.seen) >= p.limit {
		return otherLabel
	}
	p.seen[name] = struct{}{}
	return name
}

// PolicyName names what the finding is about, as the metrics and the
// background audit's PolicyReports do: ClusterImagePolicy/<name>,
// ImagePolicy/<namespace>/<name>, PodSecurity, hardening/<check>, none,
// or other.
func (f Finding) PolicyName() string {
	name, _ := findingPolicy(f)
	return name
}

// Mode is the mode that sent the finding's line where it went: enforce
// (a denial or a retry), warn or audit.
func (f Finding) Mode() string { return findingMode(f.Severity) }
