package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestCheckReadOnlyRootFilesystem(t *testing.T) {
	t.Parallel()
	ro := func(v *bool) *corev1.SecurityContext { return &corev1.SecurityContext{ReadOnlyRootFilesystem: v} }
	tests := []struct {
		name   string
		spec   *corev1.PodSpec
		prefix string
		want   []violation
	}{
		{name: "no containers", spec: &corev1.PodSpec{}},
		{
			name: "all read-only",
			spec: &corev1.PodSpec{
				InitContainers:      []corev1.Container{{Name: "i", SecurityContext: ro(ptr.To(true))}},
				Containers:          []corev1.Container{{Name: "c", SecurityContext: ro(ptr.To(true))}},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "e", SecurityContext: ro(ptr.To(true))}}},
			},
		},
		{
			name:   "unset, nil and false everywhere",
			prefix: "spec.template.spec",
			spec: &corev1.PodSpec{
				InitContainers:      []corev1.Container{{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
				Containers:          []corev1.Container{{Name: "ok", SecurityContext: ro(ptr.To(true))}, {Name: "c", SecurityContext: ro(nil)}},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "e", SecurityContext: ro(ptr.To(false))}}},
			},
			want: []violation{
				{path: "spec.template.spec.initContainers[0].securityContext.readOnlyRootFilesystem", problem: "must be true"},
				{path: "spec.template.spec.containers[1].securityContext.readOnlyRootFilesystem", problem: "must be true"},
				{path: "spec.template.spec.ephemeralContainers[0].securityContext.readOnlyRootFilesystem", problem: "must be true"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := checkReadOnlyRootFilesystem(tt.spec, tt.prefix, nil)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(violation{})); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
