package policy

import corev1 "k8s.io/api/core/v1"

// resourceLimits
//
// Every container and init container (sidecars included) must set cpu and
// memory limits, so one pod cannot starve its node. Ephemeral containers
// cannot declare resources and are not checked.
//
// Allowed: resources.limits.cpu and resources.limits.memory both set
// Denied:  either limit missing (requests do not count)
func checkResourceLimits(spec *corev1.PodSpec, prefix string, _ []string) []violation {
	var out []violation
	eachContainer(spec, func(kind ImageKind, i int, c *corev1.Container) {
		if kind == ImageKindEphemeralContainers {
			return
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Limits[r]; !ok {
				out = append(out, violation{
					path:    fieldPath(prefix, kind, i) + ".resources.limits." + string(r),
					problem: "must be set",
				})
			}
		}
	})
	return out
}
