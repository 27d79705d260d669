package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestImages(t *testing.T) {
	t.Parallel()
	always := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name string
		spec *corev1.PodSpec
		want []ImageField
	}{
		{name: "nil spec", spec: nil, want: nil},
		{name: "empty spec", spec: &corev1.PodSpec{}, want: []ImageField{}},
		{
			name: "every kind in visiting order",
			spec: &corev1.PodSpec{
				Volumes: []corev1.Volume{
					{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "ghcr.io/acme/models:v1"}}},
				},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
				Containers:          []corev1.Container{{Name: "app", Image: "nginx:1.27"}, {Name: "metrics", Image: "prom/exporter@sha256:abc"}},
				InitContainers: []corev1.Container{
					{Name: "init", Image: "alpine"},
					{Name: "proxy", Image: "envoy", RestartPolicy: &always},
				},
			},
			want: []ImageField{
				{Kind: ImageKindInitContainers, Index: 0, Name: "init", Image: "alpine"},
				{Kind: ImageKindInitContainers, Index: 1, Name: "proxy", Image: "envoy"},
				{Kind: ImageKindContainers, Index: 0, Name: "app", Image: "nginx:1.27"},
				{Kind: ImageKindContainers, Index: 1, Name: "metrics", Image: "prom/exporter@sha256:abc"},
				{Kind: ImageKindEphemeralContainers, Index: 0, Name: "debug", Image: "busybox"},
				{Kind: ImageKindVolumes, Index: 1, Name: "models", Image: "ghcr.io/acme/models:v1"},
			},
		},
		{
			name: "empty images are reported",
			spec: &corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app"}},
				Volumes:    []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{}}}},
			},
			want: []ImageField{
				{Kind: ImageKindContainers, Index: 0, Name: "app"},
				{Kind: ImageKindVolumes, Index: 0, Name: "v"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Images(tt.spec)); diff != "" {
				t.Errorf("Images() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestImageFieldPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		field       ImageField
		prefix      string
		wantPath    string
		wantPointer string
	}{
		{
			name:        "pod container",
			field:       ImageField{Kind: ImageKindContainers, Index: 1},
			prefix:      "spec",
			wantPath:    "spec.containers[1].image",
			wantPointer: "/spec/containers/1/image",
		},
		{
			name:        "pod image volume",
			field:       ImageField{Kind: ImageKindVolumes, Index: 0},
			prefix:      "spec",
			wantPath:    "spec.volumes[0].image.reference",
			wantPointer: "/spec/volumes/0/image/reference",
		},
		{
			name:        "deployment init container",
			field:       ImageField{Kind: ImageKindInitContainers, Index: 2},
			prefix:      "spec.template.spec",
			wantPath:    "spec.template.spec.initContainers[2].image",
			wantPointer: "/spec/template/spec/initContainers/2/image",
		},
		{
			name:        "cronjob ephemeral container",
			field:       ImageField{Kind: ImageKindEphemeralContainers, Index: 10},
			prefix:      "spec.jobTemplate.spec.template.spec",
			wantPath:    "spec.jobTemplate.spec.template.spec.ephemeralContainers[10].image",
			wantPointer: "/spec/jobTemplate/spec/template/spec/ephemeralContainers/10/image",
		},
		{
			name:        "bare pod spec",
			field:       ImageField{Kind: ImageKindVolumes, Index: 3},
			prefix:      "",
			wantPath:    "volumes[3].image.reference",
			wantPointer: "/volumes/3/image/reference",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.field.Path(tt.prefix); got != tt.wantPath {
				t.Errorf("Path(%q) = %q, want %q", tt.prefix, got, tt.wantPath)
			}
			if got := tt.field.JSONPointer(tt.prefix); got != tt.wantPointer {
				t.Errorf("JSONPointer(%q) = %q, want %q", tt.prefix, got, tt.wantPointer)
			}
		})
	}
}

// FuzzImages decodes arbitrary JSON as a PodSpec (the shape an
// AdmissionReview delivers) and checks that the visitor neither panics nor
// misses an image source.
func FuzzImages(f *testing.F) {
	f.Add([]byte(`{"containers":[{"name":"a","image":"nginx"}]}`))
	f.Add([]byte(`{"initContainers":[{"name":"i","image":"x","restartPolicy":"Always"}],"ephemeralContainers":[{"name":"e","image":"y"}],"volumes":[{"name":"v","image":{"reference":"z"}},{"name":"w","emptyDir":{}}]}`))
	f.Add([]byte(`{"volumes":[{"name":"v","image":null}],"containers":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec corev1.PodSpec
		if err := json.Unmarshal(data, &spec); err != nil {
			return
		}
		want := len(spec.InitContainers) + len(spec.Containers) + len(spec.EphemeralContainers)
		for _, v := range spec.Volumes {
			if v.Image != nil {
				want++
			}
		}
		got := Images(&spec)
		if len(got) != want {
			t.Fatalf("Images() returned %d fields, want %d", len(got), want)
		}
		for _, f := range got {
			path, ptr := f.Path("spec"), f.JSONPointer("spec")
			if !strings.HasPrefix(path, "spec."+string(f.Kind)+"[") || !strings.HasPrefix(ptr, "/spec/"+string(f.Kind)+"/") {
				t.Fatalf("bad paths %q, %q for %+v", path, ptr, f)
			}
		}
	})
}
