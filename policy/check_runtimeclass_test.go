package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestCheckRuntimeClass(t *testing.T) {
	t.Parallel()
	allowed := []string{"gvisor", "kata"}
	tests := []struct {
		name         string
		runtimeClass *string
		want         []violation
	}{
		{name: "allowed", runtimeClass: ptr.To("kata")},
		{name: "unset", want: []violation{{path: "spec.runtimeClassName", problem: `must be one of "gvisor", "kata"`}}},
		{name: "other", runtimeClass: ptr.To("runc"), want: []violation{{path: "spec.runtimeClassName", problem: `must be one of "gvisor", "kata", not "runc"`}}},
		{name: "empty", runtimeClass: ptr.To(""), want: []violation{{path: "spec.runtimeClassName", problem: `must be one of "gvisor", "kata", not ""`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := checkRuntimeClass(&corev1.PodSpec{RuntimeClassName: tt.runtimeClass}, "spec", allowed)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(violation{})); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
