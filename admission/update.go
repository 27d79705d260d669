package admission

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// securityRelevantUpdate reports whether an UPDATE changes anything the
// gate decides on, comparing the pod spec of the old and new object. Only
// fields that can affect neither images, signatures, Pod Security nor
// hardening are ignored, plus the metadata, except the annotations Pod
// Security reads (seccomp, AppArmor). An old object that cannot be read
// counts as a change: fail safe, evaluate.
func securityRelevantUpdate(gk groupKind, oldRaw []byte, pod podTemplate) bool {
	old, err := extractPod(gk, oldRaw)
	if err != nil {
		return true
	}
	if !equality.Semantic.DeepEqual(relevantSpec(old.Spec), relevantSpec(pod.Spec)) {
		return true
	}
	return !equality.Semantic.DeepEqual(securityAnnotations(old.Meta.Annotations), securityAnnotations(pod.Meta.Annotations))
}

// relevantSpec returns a copy of spec without the fields that routinely
// change on live pods and templates and cannot weaken anything: scheduling
// gates (removed by controllers), tolerations (added by controllers),
// activeDeadlineSeconds and nodeName.
func relevantSpec(spec *corev1.PodSpec) corev1.PodSpec {
	s := *spec
	s.SchedulingGates = nil
	s.Tolerations = nil
	s.ActiveDeadlineSeconds = nil
	s.NodeName = ""
	return s
}

// securityAnnotations are the annotations Pod Security evaluates.
func securityAnnotations(a map[string]string) map[string]string {
	var out map[string]string
	for k, v := range a {
		if strings.HasPrefix(k, "seccomp.security.alpha.kubernetes.io/") ||
			strings.HasPrefix(k, "container.seccomp.security.alpha.kubernetes.io/") ||
			strings.HasPrefix(k, "container.apparmor.security.beta.kubernetes.io/") {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
