package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestCheckResourceLimits(t *testing.T) {
	t.Parallel()
	limits := func(names ...corev1.ResourceName) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
		for _, n := range names {
			r.Limits[n] = resource.MustParse("1")
		}
		r.Requests[corev1.ResourceCPU] = resource.MustParse("1") // requests never count
		return r
	}
	tests := []struct {
		name string
		spec *corev1.PodSpec
		want []violation
	}{
		{name: "no containers", spec: &corev1.PodSpec{}},
		{
			name: "cpu and memory everywhere; ephemeral containers are not checked",
			spec: &corev1.PodSpec{
				InitContainers:      []corev1.Container{{Name: "i", Resources: limits(corev1.ResourceCPU, corev1.ResourceMemory)}},
				Containers:          []corev1.Container{{Name: "c", Resources: limits(corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage)}},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug"}}},
			},
		},
		{
			name: "missing limits",
			spec: &corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "i", Resources: limits(corev1.ResourceMemory)}},
				Containers:     []corev1.Container{{Name: "ok", Resources: limits(corev1.ResourceCPU, corev1.ResourceMemory)}, {Name: "none"}, {Name: "cpu", Resources: limits(corev1.ResourceCPU)}},
			},
			want: []violation{
				{path: "spec.initContainers[0].resources.limits.cpu", problem: "must be set"},
				{path: "spec.containers[1].resources.limits.cpu", problem: "must be set"},
				{path: "spec.containers[1].resources.limits.memory", problem: "must be set"},
				{path: "spec.containers[2].resources.limits.memory", problem: "must be set"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := checkResourceLimits(tt.spec, "spec", nil)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(violation{})); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
