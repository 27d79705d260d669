package policy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func lv(level psapi.Level, version string) psapi.LevelVersion {
	v, err := psapi.ParseVersion(version)
	if err != nil {
		panic(err)
	}
	return psapi.LevelVersion{Level: level, Version: v}
}

func TestLevels(t *testing.T) {
	t.Parallel()
	restricted := lv(psapi.LevelRestricted, "latest")
	privileged := lv(psapi.LevelPrivileged, "latest")
	lenient, err := ParseConfig([]byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\npodSecurity:\n  defaults: {enforce: privileged, warn: privileged, audit: baseline, audit-version: v1.29}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		config  *Config
		labels  map[string]string
		want    Levels
		wantErr string
	}{
		{name: "no labels: defaults", config: DefaultConfig(), want: Levels{restricted, restricted, restricted}},
		{name: "unrelated labels", config: lenient, labels: map[string]string{"team": "a"}, want: Levels{privileged, privileged, lv(psapi.LevelBaseline, "v1.29")}},
		{
			name:   "every label",
			config: DefaultConfig(),
			labels: map[string]string{
				"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30",
				"pod-security.kubernetes.io/warn": "privileged", "pod-security.kubernetes.io/warn-version": "v1.2",
				"pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/audit-version": "latest",
			},
			want: Levels{lv(psapi.LevelBaseline, "v1.30"), lv(psapi.LevelPrivileged, "v1.2"), restricted},
		},
		{
			name:   "warn follows a stricter enforce label, as in PSA",
			config: lenient,
			labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30"},
			want:   Levels{lv(psapi.LevelBaseline, "v1.30"), lv(psapi.LevelBaseline, "v1.30"), lv(psapi.LevelBaseline, "v1.29")},
		},
		{
			name:    "invalid enforce fails safe to restricted:latest",
			config:  lenient,
			labels:  map[string]string{"pod-security.kubernetes.io/enforce": "bogus", "pod-security.kubernetes.io/enforce-version": "1.30"},
			want:    Levels{restricted, privileged, lv(psapi.LevelBaseline, "v1.29")},
			wantErr: `parse Pod Security labels: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.30": must be "latest" or "v1.x"]`,
		},
		{
			name:    "invalid warn and audit fail open like PSA (they never deny)",
			config:  DefaultConfig(),
			labels:  map[string]string{"pod-security.kubernetes.io/warn": "x", "pod-security.kubernetes.io/audit": "y"},
			want:    Levels{restricted, privileged, privileged},
			wantErr: `parse Pod Security labels: [metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "y": must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "x": must be one of privileged, baseline, restricted]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.config.Levels(tt.labels)
			if got != tt.want {
				t.Errorf("Levels() = %+v, want %+v", got, tt.want)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("Levels() error = %q, want %q", gotErr, tt.wantErr)
			}
		})
	}
}

func TestPodSecurityExemption(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\npodSecurity:\n  exemptions: {usernames: [admin], runtimeClasses: [kata], namespaces: [legacy]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	kata := &corev1.PodSpec{RuntimeClassName: ptr.To("kata")}
	tests := []struct {
		name      string
		namespace string
		username  string
		spec      *corev1.PodSpec
		want      string
	}{
		{name: "not exempt", namespace: "app", username: "bob", spec: &corev1.PodSpec{RuntimeClassName: ptr.To("runc")}, want: ""},
		{name: "namespace first", namespace: "legacy", username: "admin", spec: kata, want: ExemptNamespace},
		{name: "user", namespace: "app", username: "admin", spec: kata, want: ExemptUser},
		{name: "runtime class", namespace: "app", username: "bob", spec: kata, want: ExemptRuntimeClass},
		{name: "nil spec", namespace: "app", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := c.PodSecurityExemption(tt.namespace, tt.username, tt.spec); got != tt.want {
				t.Errorf("PodSecurityExemption() = %q, want %q", got, tt.want)
			}
		})
	}
}

// compliantPod is a 3-container pod (init sidecar, app, metrics) that meets
// restricted:latest and every hardening check but runtimeClass.
func compliantPod() *corev1.Pod {
	container := func(name string) corev1.Container {
		return corev1.Container{
			Name:  name,
			Image: "registry.example/" + name + "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
			}},
		}
	}
	sidecar := container("proxy")
	sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			InitContainers: []corev1.Container{sidecar},
			Containers:     []corev1.Container{container("app"), container("metrics")},
		},
	}
}

func TestPodSecurityEvaluate(t *testing.T) {
	t.Parallel()
	ps, err := NewPodSecurity()
	if err != nil {
		t.Fatal(err)
	}
	escalating := compliantPod()
	escalating.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	privileged := compliantPod()
	privileged.Spec.Containers[1].SecurityContext.Privileged = ptr.To(true)
	privileged.Spec.HostNetwork = true
	tests := []struct {
		name string
		lv   psapi.LevelVersion
		pod  *corev1.Pod
		want []string
	}{
		{name: "compliant", lv: lv(psapi.LevelRestricted, "latest"), pod: compliantPod()},
		{
			name: "escalation",
			lv:   lv(psapi.LevelRestricted, "latest"),
			pod:  escalating,
			want: []string{`allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)`},
		},
		{
			name: "baseline sees only baseline checks",
			lv:   lv(psapi.LevelBaseline, "v1.30"),
			pod:  privileged,
			want: []string{
				`host namespaces (hostNetwork=true)`,
				`privileged (container "metrics" must not set securityContext.privileged=true)`,
			},
		},
		{name: "privileged allows everything", lv: lv(psapi.LevelPrivileged, "latest"), pod: privileged},
		{name: "nil spec", lv: lv(psapi.LevelRestricted, "latest"), pod: &corev1.Pod{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ps.Evaluate(tt.lv, &tt.pod.ObjectMeta, &tt.pod.Spec)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if got := ps.Evaluate(lv(psapi.LevelRestricted, "latest"), nil, nil); got != nil {
		t.Errorf("Evaluate(nil, nil) = %v, want allowed", got)
	}
}

func TestPodSecurityReview(t *testing.T) {
	t.Parallel()
	ps, err := NewPodSecurity()
	if err != nil {
		t.Fatal(err)
	}
	restricted, baseline := lv(psapi.LevelRestricted, "latest"), lv(psapi.LevelBaseline, "v1.30")
	privileged := lv(psapi.LevelPrivileged, "latest")
	pod := compliantPod()
	pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	pod.Spec.Containers[0].SecurityContext.Capabilities = nil
	const items = `allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])`
	tests := []struct {
		name    string
		levels  Levels
		enforce bool
		want    PodSecurityResult
	}{
		{
			name: "denied: no warning, audit kept", levels: Levels{restricted, restricted, restricted}, enforce: true,
			want: PodSecurityResult{Denied: `violates PodSecurity "restricted:latest": ` + items, Audit: `would violate PodSecurity "restricted:latest": ` + items},
		},
		{
			name: "baseline enforce, restricted warn", levels: Levels{baseline, restricted, privileged}, enforce: true,
			want: PodSecurityResult{Warning: `would violate PodSecurity "restricted:latest": ` + items},
		},
		{
			name: "workload template in warn mode is never denied", levels: Levels{restricted, restricted, baseline}, enforce: false,
			want: PodSecurityResult{Warning: `would violate PodSecurity "restricted:latest": ` + items},
		},
		{name: "privileged everywhere", levels: Levels{privileged, privileged, privileged}, enforce: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ps.Review(tt.levels, &pod.ObjectMeta, &pod.Spec, tt.enforce)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Review() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPodSecurityFixtures runs the pass and fail pods that ship with
// k8s.io/pod-security-admission (test/testdata/<level>/v1.N/{pass,fail})
// through this evaluator at the fixture's level and version.
func TestPodSecurityFixtures(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/pod-security-admission").Output()
	if err != nil {
		t.Fatalf("locate k8s.io/pod-security-admission: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "test", "testdata")
	ps, err := NewPodSecurity()
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := filepath.Glob(filepath.Join(root, "*", "v1.*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures under %s: %v", root, err)
	}
	total := 0
	for _, dir := range dirs {
		level, version := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
		want := lv(psapi.Level(level), version)
		for _, outcome := range []string{"pass", "fail"} {
			files, _ := filepath.Glob(filepath.Join(dir, outcome, "*.yaml"))
			total += len(files)
			t.Run(level+"/"+version+"/"+outcome, func(t *testing.T) {
				t.Parallel()
				for _, file := range files {
					data, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					var pod corev1.Pod
					if err := yaml.Unmarshal(data, &pod); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					defaultVolumes(&pod.Spec)
					items := ps.Evaluate(want, &pod.ObjectMeta, &pod.Spec)
					switch {
					case outcome == "pass" && len(items) > 0:
						t.Errorf("%s: denied at %s: %s", filepath.Base(file), want, Violates(want, items))
					case outcome == "fail" && len(items) == 0:
						t.Errorf("%s: admitted at %s, want denied", filepath.Base(file), want)
					}
				}
			})
		}
	}
	if total < 1000 {
		t.Errorf("only %d fixtures found under %s", total, root)
	}
}

// defaultVolumes applies the API server's one default the fixtures rely on
// (SetDefaults_Volume in k8s.io/kubernetes/pkg/apis/core/v1): a volume with
// no source is an emptyDir. Webhooks only ever see defaulted objects, and
// PSA's own runner creates the fixtures through an API server.
func defaultVolumes(spec *corev1.PodSpec) {
	for i := range spec.Volumes {
		if spec.Volumes[i].VolumeSource == (corev1.VolumeSource{}) {
			spec.Volumes[i].EmptyDir = &corev1.EmptyDirVolumeSource{}
		}
	}
}

func BenchmarkPodSecurityRestricted(b *testing.B) {
	ps, err := NewPodSecurity()
	if err != nil {
		b.Fatal(err)
	}
	c := DefaultConfig()
	pod := compliantPod()
	nsLabels := map[string]string{"kubernetes.io/metadata.name": "team-a"}
	b.ReportAllocs()
	for b.Loop() {
		levels, err := c.Levels(nsLabels)
		if err != nil {
			b.Fatal(err)
		}
		if r := ps.Review(levels, &pod.ObjectMeta, &pod.Spec, true); r != (PodSecurityResult{}) {
			b.Fatal(r)
		}
	}
}
