package admission

import (
	"fmt"

	"github.com/signgate/signgate/policy"
)

// podSecurity evaluates the namespace's Pod Security levels like PSA does:
// enforce denies (workload templates only with podSecurity.workloads:
// enforce, the default), warn adds a warning when the request is otherwise
// admitted, audit adds an audit annotation. Levels come from the namespace's
// labels as the policy source has them, never from the object.
func (e *evaluation) podSecurity() {
	if e.cfg.PodSecurityExemption(e.req.Namespace, e.req.UserInfo.Username, e.pod.Spec) != "" {
		return
	}
	levels, err := e.cfg.Levels(e.labels)
	if err != nil { // the returned levels fail safe, as PSA's do
		e.f.record(SeverityWarn, "", Finding{Code: CodePodSecurityLevels, Message: fmt.Sprintf("namespace %s: %v; evaluating the fail-safe levels", e.req.Namespace, err)})
	}
	enforce := !e.pod.Workload || e.cfg.PodSecurity.Workloads != policy.ModeWarn
	res := e.gate.podSecurity.Review(levels, e.pod.Meta, e.pod.Spec, enforce)
	if res.Denied != "" {
		e.f.record(SeverityDeny, "", e.psFinding(res.Denied))
	}
	if res.Warning != "" {
		e.f.record(SeverityWarn, "", e.psFinding(res.Warning))
	}
	if res.Audit != "" {
		e.f.record(SeverityAudit, auditPodSecurity, e.psFinding(res.Audit))
	}
}

// psFinding keeps PSA's wording and, for workloads, prefixes the path of the
// template: `spec.template.spec: violates PodSecurity "restricted:latest": …`.
func (e *evaluation) psFinding(msg string) Finding {
	if e.pod.Workload {
		return Finding{Code: CodePodSecurity, Field: e.pod.Prefix, Message: e.pod.Prefix + ": " + msg}
	}
	return Finding{Code: CodePodSecurity, Message: msg}
}

// hardening runs the configured hardening checks whose namespace selector
// matches; each finding follows its check's mode (enforce on a workload
// template follows podSecurity.workloads).
func (e *evaluation) hardening() {
	for _, f := range e.cfg.Hardening(e.labels, e.pod.Spec, e.pod.Prefix) {
		e.f.add(e.enforceMode(f.Mode), auditHardening, Finding{Code: CodeHardening, Field: f.Path, Check: f.Check, Message: f.Message})
	}
}
