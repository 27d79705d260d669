package admission

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/policy"
)

// TestPodSecurityFixturesThroughTheGate runs the pass and fail pods that
// ship with k8s.io/pod-security-admission (test/testdata/<level>/v1.N)
// through the gate's own path: a review of the pod in a namespace labelled
// pod-security.kubernetes.io/enforce=<level> and enforce-version=<v1.N>,
// decoded, its levels taken from the labels, answered by Validate. A pass
// pod is admitted, a fail pod denied by Pod Security. Images are written
// by digest and no policy covers them (unmatchedImages: allow), so Pod
// Security alone decides.
func TestPodSecurityFixturesThroughTheGate(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/pod-security-admission").Output()
	if err != nil {
		t.Fatalf("locate k8s.io/pod-security-admission: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "test", "testdata")
	dirs, err := filepath.Glob(filepath.Join(root, "*", "v1.*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures under %s: %v", root, err)
	}
	cfg := policy.DefaultConfig()
	cfg.UnmatchedImages = policy.UnmatchedAllow
	total := 0
	for _, dir := range dirs {
		level, version := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
		g, err := NewGate(Options{Verifier: nopVerifier{}, Config: StaticConfig{Config: cfg}, Policies: labelPolicies{
			"kubernetes.io/metadata.name":                "fixtures",
			"pod-security.kubernetes.io/enforce":         level,
			"pod-security.kubernetes.io/enforce-version": version,
		}})
		if err != nil {
			t.Fatal(err)
		}
		for _, outcome := range []string{"pass", "fail"} {
			files, _ := filepath.Glob(filepath.Join(dir, outcome, "*.yaml"))
			total += len(files)
			t.Run(level+"/"+version+"/"+outcome, func(t *testing.T) {
				t.Parallel()
				for _, file := range files {
					r := g.Validate(t.Context(), fixtureReview(t, file))
					switch {
					case outcome == "pass" && !r.Allowed:
						t.Errorf("%s: denied at %s %s: %s", filepath.Base(file), level, version, r.Result.Message)
					case outcome == "fail" && r.Allowed:
						t.Errorf("%s: admitted at %s %s, want denied", filepath.Base(file), level, version)
					case outcome == "fail" && !strings.Contains(r.Result.Message, "violates PodSecurity"):
						t.Errorf("%s: denied, but not by Pod Security: %s", filepath.Base(file), r.Result.Message)
					}
				}
			})
		}
	}
	if total < 1000 {
		t.Errorf("only %d fixtures found under %s", total, root)
	}
}

// fixtureReview is a CREATE review of the fixture pod in namespace
// fixtures, its images by digest, with the API server's one default the
// fixtures rely on (a volume without a source is an emptyDir).
func fixtureReview(t *testing.T, file string) *admissionv1.AdmissionRequest {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].VolumeSource == (corev1.VolumeSource{}) {
			pod.Spec.Volumes[i].EmptyDir = &corev1.EmptyDirVolumeSource{}
		}
	}
	const image = "registry.example/pause@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].Image = image
	}
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].Image = image
	}
	for i := range pod.Spec.EphemeralContainers {
		pod.Spec.EphemeralContainers[i].Image = image
	}
	pod.Namespace = "fixtures"
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "fixtures", Name: pod.Name, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
	}
}
