package policy

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// runtimeClass
//
// The pod must run with one of the allowed runtime classes (e.g. gvisor,
// kata), so untrusted workloads get a sandboxed runtime.
//
// Allowed: spec.runtimeClassName in the rule's allowed list
// Denied:  unset runtimeClassName, or a name not in the list
func checkRuntimeClass(spec *corev1.PodSpec, prefix string, allowed []string) []violation {
	if rc := spec.RuntimeClassName; rc != nil && slices.Contains(allowed, *rc) {
		return nil
	}
	problem := "must be one of " + quoteList(allowed)
	if rc := spec.RuntimeClassName; rc != nil {
		problem += `, not "` + *rc + `"`
	}
	return []violation{{path: joinPath(prefix, "runtimeClassName"), problem: problem}}
}
