package policy

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// HardeningCheck names a hardening check (docs/admission.md): opt-in checks
// beyond the Pod Security Standards, one file each (check_*.go).
type HardeningCheck string

// The hardening checks.
const (
	CheckReadOnlyRootFilesystem HardeningCheck = "readOnlyRootFilesystem" // check_readonlyrootfs.go
	CheckResourceLimits         HardeningCheck = "resourceLimits"         // check_resourcelimits.go
	CheckRuntimeClass           HardeningCheck = "runtimeClass"           // check_runtimeclass.go
)

// checkFunc is a hardening check: a pure function of the pod spec. prefix is
// the spec's field path (as for ImageField.Path); allowed is the rule's
// allowed list, for the checks that take one.
type checkFunc func(spec *corev1.PodSpec, prefix string, allowed []string) []violation

// violation is one field that fails a check and what to do about it.
type violation struct {
	path    string // "spec.containers[0].securityContext.readOnlyRootFilesystem"
	problem string // "must be true"
}

// hardeningCheck returns the function of a check and whether it takes an
// allowed list; ok is false for an unknown check.
func hardeningCheck(c HardeningCheck) (fn checkFunc, takesAllowed, ok bool) {
	switch c {
	case CheckReadOnlyRootFilesystem:
		return checkReadOnlyRootFilesystem, false, true
	case CheckResourceLimits:
		return checkResourceLimits, false, true
	case CheckRuntimeClass:
		return checkRuntimeClass, true, true
	}
	return nil, false, false
}

// HardeningRule is one entry of the hardening list: which check, how a
// failure is reported, and in which namespaces it applies.
type HardeningRule struct {
	// Check is one of readOnlyRootFilesystem, resourceLimits, runtimeClass.
	Check HardeningCheck `yaml:"check"`
	// Mode is enforce (default), warn or audit.
	Mode Mode `yaml:"mode"`
	// NamespaceSelector selects the namespaces (by their labels) the rule
	// applies to; absent or empty selects every namespace.
	NamespaceSelector *LabelSelector `yaml:"namespaceSelector"`
	// Allowed is required for runtimeClass (the allowed runtimeClassNames)
	// and refused for the other checks.
	Allowed []string `yaml:"allowed"`

	fn       checkFunc
	selector labels.Selector
}

// LabelSelector is metav1.LabelSelector as written in the configuration
// file (same fields and semantics).
type LabelSelector struct {
	MatchLabels      map[string]string          `yaml:"matchLabels"`
	MatchExpressions []LabelSelectorRequirement `yaml:"matchExpressions"`
}

// LabelSelectorRequirement is metav1.LabelSelectorRequirement: operator is
// In, NotIn, Exists or DoesNotExist.
type LabelSelectorRequirement struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"`
	Values   []string `yaml:"values"`
}

// compile validates the rule, defaults its mode and compiles its selector.
func (r *HardeningRule) compile(p path, errs *problems) {
	fn, takesAllowed, ok := hardeningCheck(r.Check)
	if !ok {
		errs.add(p.to("check"), "must be one of %s, %s, %s (got %q)", CheckReadOnlyRootFilesystem, CheckResourceLimits, CheckRuntimeClass, r.Check)
	}
	r.fn = fn
	switch r.Mode {
	case "":
		r.Mode = ModeEnforce
	case ModeEnforce, ModeWarn, ModeAudit:
	default:
		errs.add(p.to("mode"), "must be one of enforce, warn, audit (got %q)", r.Mode)
	}
	switch {
	case ok && takesAllowed && len(r.Allowed) == 0:
		errs.add(p.to("allowed"), "must list at least one value for the %s check", r.Check)
	case ok && !takesAllowed && r.Allowed != nil:
		errs.add(p.to("allowed"), "is only used by the %s check; remove it", CheckRuntimeClass)
	}
	errs.nonEmpty(p.to("allowed"), r.Allowed)
	r.selector = labels.Everything()
	if r.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(r.NamespaceSelector.metav1())
		if err != nil {
			errs.add(p.to("namespaceSelector"), "%v", err)
			return
		}
		r.selector = sel
	}
}

func (s *LabelSelector) metav1() *metav1.LabelSelector {
	out := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
		})
	}
	return out
}

// Finding is one hardening failure. Message is the full line to show:
// "spec.containers[0].securityContext.readOnlyRootFilesystem: must be true
// (readOnlyRootFilesystem check)".
type Finding struct {
	Check   string
	Mode    Mode
	Path    string
	Message string
}

// Hardening runs the hardening rules whose namespace selector matches
// nsLabels over spec and returns their findings: rules in configuration
// order, fields in visiting order (init containers, containers, ephemeral
// containers). prefix is the spec's field path, as for ImageField.Path. The
// caller acts on each Finding's Mode. A nil spec has no findings.
func (c *Config) Hardening(nsLabels map[string]string, spec *corev1.PodSpec, prefix string) []Finding {
	if spec == nil {
		return nil
	}
	var findings []Finding
	set := labels.Set(nsLabels)
	for i := range c.HardeningChecks {
		r := &c.HardeningChecks[i]
		if r.fn == nil || !r.selector.Matches(set) {
			continue
		}
		for _, v := range r.fn(spec, prefix, r.Allowed) {
			findings = append(findings, Finding{
				Check:   string(r.Check),
				Mode:    r.Mode,
				Path:    v.path,
				Message: v.path + ": " + v.problem + " (" + string(r.Check) + " check)",
			})
		}
	}
	return findings
}

// quoteList renders allowed values for a message: "gvisor", "kata".
func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = `"` + v + `"`
	}
	return strings.Join(q, ", ")
}
