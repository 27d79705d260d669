package policy

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	pspolicy "k8s.io/pod-security-admission/policy"
)

// Levels are the Pod Security level and version of each mode in a
// namespace.
type Levels struct {
	Enforce, Warn, Audit psapi.LevelVersion
}

// Levels returns the Pod Security levels for a namespace with these labels,
// exactly as Pod Security Admission resolves them: the
// pod-security.kubernetes.io/{enforce,warn,audit}[-version] labels, the
// configuration's defaults where a label is absent, and warn following a
// stricter enforce label. Invalid labels fail safe as in PSA (enforce:
// restricted, version: latest; warn and audit: privileged) and are reported
// in the error, but the returned Levels are always usable.
func (c *Config) Levels(nsLabels map[string]string) (Levels, error) {
	p, errs := psapi.PolicyToEvaluate(nsLabels, c.psDefaults)
	levels := Levels{Enforce: p.Enforce, Warn: p.Warn, Audit: p.Audit}
	if len(errs) > 0 {
		return levels, fmt.Errorf("parse Pod Security labels: %w", errs.ToAggregate())
	}
	return levels, nil
}

// The reasons PodSecurityExemption returns; the same values PSA writes in
// its pod-security.kubernetes.io/exempt audit annotation.
const (
	ExemptNamespace    = "namespace"
	ExemptUser         = "user"
	ExemptRuntimeClass = "runtimeClass"
)

// PodSecurityExemption reports why Pod Security is skipped for a pod in
// namespace requested by username, checked in PSA's order: namespace, user,
// runtime class. It returns "" when the pod is not exempt.
func (c *Config) PodSecurityExemption(namespace, username string, spec *corev1.PodSpec) string {
	ex := &c.PodSecurity.Exemptions
	switch {
	case slices.Contains(ex.Namespaces, namespace):
		return ExemptNamespace
	case username != "" && slices.Contains(ex.Usernames, username):
		return ExemptUser
	case spec != nil && spec.RuntimeClassName != nil && slices.Contains(ex.RuntimeClasses, *spec.RuntimeClassName):
		return ExemptRuntimeClass
	}
	return ""
}

// PodSecurity evaluates pods against the Pod Security Standards with the
// upstream checks of k8s.io/pod-security-admission. Build it once with
// NewPodSecurity; it is safe for concurrent use.
type PodSecurity struct {
	evaluator pspolicy.Evaluator
}

// NewPodSecurity builds the evaluator over PSA's default checks (all policy
// versions up to the module's latest).
func NewPodSecurity() (*PodSecurity, error) {
	e, err := pspolicy.NewEvaluator(pspolicy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("build Pod Security evaluator: %w", err)
	}
	return &PodSecurity{evaluator: e}, nil
}

// Evaluate checks a pod (its metadata and spec, or a template's) at lv and
// returns PSA's forbidden items in PSA's order, each "reason (detail)", e.g.
// `allowPrivilegeEscalation != false (container "app" must set
// securityContext.allowPrivilegeEscalation=false)`. It returns nil when the
// pod is allowed. Format the items with Violates or WouldViolate.
func (p *PodSecurity) Evaluate(lv psapi.LevelVersion, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	if meta == nil {
		meta = &metav1.ObjectMeta{}
	}
	if spec == nil {
		spec = &corev1.PodSpec{}
	}
	r := pspolicy.AggregateCheckResults(p.evaluator.EvaluatePod(lv, meta, spec))
	if r.Allowed {
		return nil
	}
	items := make([]string, len(r.ForbiddenReasons))
	for i, reason := range r.ForbiddenReasons {
		items[i] = reason
		if d := r.ForbiddenDetails[i]; d != "" {
			items[i] += " (" + d + ")"
		}
	}
	return items
}

// Violates formats a denial as PSA does:
// `violates PodSecurity "restricted:latest": item, item`.
func Violates(lv psapi.LevelVersion, items []string) string {
	return fmt.Sprintf("violates PodSecurity %q: %s", lv.String(), strings.Join(items, ", "))
}

// WouldViolate formats a warning or audit message as PSA does:
// `would violate PodSecurity "restricted:latest": item, item`.
func WouldViolate(lv psapi.LevelVersion, items []string) string {
	return "would " + strings.Replace(Violates(lv, items), "violates", "violate", 1)
}

// PodSecurityResult is what Pod Security says about one pod, worded as PSA
// words it. Empty strings mean no violation.
type PodSecurityResult struct {
	// Denied is the enforce level's `violates PodSecurity "…": …`.
	Denied string
	// Warning is the warn level's `would violate PodSecurity "…": …`; like
	// PSA, it is left empty when the request is denied.
	Warning string
	// Audit is the audit level's `would violate PodSecurity "…": …`, for the
	// pod-security.kubernetes.io/audit-violations audit annotation.
	Audit string
}

// Review evaluates a pod at all three levels the way PSA's admission does,
// evaluating each distinct level and version once. With enforce false (PSA's
// behaviour for workload templates, podSecurity.workloads: warn) the enforce
// level is not evaluated and nothing is denied.
func (p *PodSecurity) Review(levels Levels, meta *metav1.ObjectMeta, spec *corev1.PodSpec, enforce bool) PodSecurityResult {
	type evaluation struct {
		lv    psapi.LevelVersion
		items []string
	}
	var (
		res  PodSecurityResult
		memo [3]evaluation // at most one per mode; usually all three are equal
		n    int
	)
	eval := func(lv psapi.LevelVersion) []string {
		for _, e := range memo[:n] {
			if e.lv == lv {
				return e.items
			}
		}
		items := p.Evaluate(lv, meta, spec)
		memo[n] = evaluation{lv, items}
		n++
		return items
	}
	if enforce {
		if items := eval(levels.Enforce); len(items) > 0 {
			res.Denied = Violates(levels.Enforce, items)
		}
	}
	if items := eval(levels.Audit); len(items) > 0 {
		res.Audit = WouldViolate(levels.Audit, items)
	}
	if res.Denied == "" {
		if items := eval(levels.Warn); len(items) > 0 {
			res.Warning = WouldViolate(levels.Warn, items)
		}
	}
	return res
}
