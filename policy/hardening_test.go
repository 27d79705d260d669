package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

const hardeningConfig = `apiVersion: signgate.dev/v1alpha1
kind: GateConfiguration
hardening:
  - check: readOnlyRootFilesystem
    mode: enforce
    namespaceSelector: {matchLabels: {env: prod}}
  - check: runtimeClass
    allowed: [gvisor, kata]
    mode: warn
    namespaceSelector:
      matchExpressions: [{key: sandbox, operator: Exists}]
  - check: resourceLimits
    mode: audit
`

func TestConfigHardening(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(hardeningConfig))
	if err != nil {
		t.Fatal(err)
	}
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "nginx"}},
	}
	readOnly := Finding{Check: "readOnlyRootFilesystem", Mode: ModeEnforce, Path: "spec.containers[0].securityContext.readOnlyRootFilesystem",
		Message: "spec.containers[0].securityContext.readOnlyRootFilesystem: must be true (readOnlyRootFilesystem check)"}
	runtimeClass := Finding{Check: "runtimeClass", Mode: ModeWarn, Path: "spec.runtimeClassName",
		Message: `spec.runtimeClassName: must be one of "gvisor", "kata" (runtimeClass check)`}
	cpu := Finding{Check: "resourceLimits", Mode: ModeAudit, Path: "spec.containers[0].resources.limits.cpu",
		Message: "spec.containers[0].resources.limits.cpu: must be set (resourceLimits check)"}
	memory := Finding{Check: "resourceLimits", Mode: ModeAudit, Path: "spec.containers[0].resources.limits.memory",
		Message: "spec.containers[0].resources.limits.memory: must be set (resourceLimits check)"}
	tests := []struct {
		name     string
		nsLabels map[string]string
		spec     *corev1.PodSpec
		want     []Finding
	}{
		{name: "unlabelled namespace gets only unselected rules", want: []Finding{cpu, memory}},
		{name: "prod", nsLabels: map[string]string{"env": "prod"}, spec: spec, want: []Finding{readOnly, cpu, memory}},
		{name: "prod and sandbox, in configuration order", nsLabels: map[string]string{"env": "prod", "sandbox": ""}, want: []Finding{readOnly, runtimeClass, cpu, memory}},
		{name: "other env", nsLabels: map[string]string{"env": "dev"}, want: []Finding{cpu, memory}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, c.Hardening(tt.nsLabels, spec, "spec")); diff != "" {
				t.Errorf("Hardening() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("compliant pod", func(t *testing.T) {
		t.Parallel()
		ok := compliantPod().Spec.DeepCopy()
		ok.RuntimeClassName = ptr.To("gvisor")
		if got := c.Hardening(map[string]string{"env": "prod", "sandbox": "yes"}, ok, "spec"); len(got) != 0 {
			t.Errorf("Hardening() = %v, want no findings", got)
		}
	})
	t.Run("nil spec and default configuration", func(t *testing.T) {
		t.Parallel()
		if got := c.Hardening(nil, nil, "spec"); got != nil {
			t.Errorf("Hardening(nil spec) = %v", got)
		}
		if got := DefaultConfig().Hardening(nil, spec, "spec"); got != nil {
			t.Errorf("DefaultConfig().Hardening() = %v, want none", got)
		}
	})
}

func BenchmarkHardening(b *testing.B) {
	c, err := ParseConfig([]byte(hardeningConfig))
	if err != nil {
		b.Fatal(err)
	}
	pod := compliantPod()
	pod.Spec.RuntimeClassName = ptr.To("gvisor")
	labels := map[string]string{"env": "prod", "sandbox": "yes", "kubernetes.io/metadata.name": "team-a"}
	b.ReportAllocs()
	for b.Loop() {
		if f := c.Hardening(labels, &pod.Spec, "spec"); len(f) != 0 {
			b.Fatal(f)
		}
	}
}
