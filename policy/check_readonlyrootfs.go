package policy

import corev1 "k8s.io/api/core/v1"

// readOnlyRootFilesystem
//
// Every container, init container (sidecars included) and ephemeral
// container must set securityContext.readOnlyRootFilesystem=true, so a
// compromised process cannot modify its image's files. Writable paths come
// from volumes (emptyDir) instead.
//
// Allowed: securityContext.readOnlyRootFilesystem: true
// Denied:  unset securityContext, unset or false readOnlyRootFilesystem
func checkReadOnlyRootFilesystem(spec *corev1.PodSpec, prefix string, _ []string) []violation {
	var out []violation
	eachContainer(spec, func(kind ImageKind, i int, c *corev1.Container) {
		if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			return
		}
		out = append(out, violation{
			path:    fieldPath(prefix, kind, i) + ".securityContext.readOnlyRootFilesystem",
			problem: "must be true",
		})
	})
	return out
}
