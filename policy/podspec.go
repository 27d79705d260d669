package policy

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ImageKind names the pod-spec list an image comes from. Its value is the
// field name in the Kubernetes API, so it can be used in field paths.
type ImageKind string

// The pod-spec lists that hold images, in the order Images visits them.
const (
	ImageKindInitContainers      ImageKind = "initContainers" // includes restartPolicy: Always sidecars
	ImageKindContainers          ImageKind = "containers"
	ImageKindEphemeralContainers ImageKind = "ephemeralContainers"
	ImageKindVolumes             ImageKind = "volumes" // volumes[].image.reference
)

// ImageField is one image reference in a pod spec: where it is and what it
// says. Name is the container or volume name; Image is the reference exactly
// as written (possibly empty).
type ImageField struct {
	Kind  ImageKind
	Index int
	Name  string
	Image string
}

// Path returns the field path of the image in the style of Kubernetes error
// messages, e.g. "spec.containers[1].image" or
// "spec.volumes[0].image.reference".
//
// prefix is the dot-separated path of the pod spec inside the object: "spec"
// for a Pod, "spec.template.spec" for most workloads,
// "spec.jobTemplate.spec.template.spec" for a CronJob, "template.spec" for a
// PodTemplate, "" for a bare PodSpec. Its segments are plain field names
// (no dots, slashes or indices), which is what lets Path and JSONPointer
// derive both forms from the one string.
func (f ImageField) Path(prefix string) string {
	return fieldPath(prefix, f.Kind, f.Index) + f.suffix(".")
}

// JSONPointer returns the RFC 6901 pointer to the image for a JSON patch,
// e.g. "/spec/containers/1/image" or "/spec/volumes/0/image/reference".
// prefix is as for Path.
func (f ImageField) JSONPointer(prefix string) string {
	var b strings.Builder
	if prefix != "" {
		b.WriteString("/")
		b.WriteString(strings.ReplaceAll(prefix, ".", "/"))
	}
	b.WriteString("/")
	b.WriteString(string(f.Kind))
	b.WriteString("/")
	b.WriteString(strconv.Itoa(f.Index))
	b.WriteString(f.suffix("/"))
	return b.String()
}

// suffix is the path from the list element to the image string.
func (f ImageField) suffix(sep string) string {
	if f.Kind == ImageKindVolumes {
		return sep + "image" + sep + "reference"
	}
	return sep + "image"
}

// Images returns every image reference in spec: init containers (sidecars
// included), containers, ephemeral containers, then image volumes, each in
// list order. Empty references are returned too, so the caller decides what
// an empty image means. A nil spec has no images.
func Images(spec *corev1.PodSpec) []ImageField {
	if spec == nil {
		return nil
	}
	fields := make([]ImageField, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers)+len(spec.Volumes))
	eachContainer(spec, func(kind ImageKind, i int, c *corev1.Container) {
		fields = append(fields, ImageField{Kind: kind, Index: i, Name: c.Name, Image: c.Image})
	})
	for i := range spec.Volumes {
		if img := spec.Volumes[i].Image; img != nil {
			fields = append(fields, ImageField{Kind: ImageKindVolumes, Index: i, Name: spec.Volumes[i].Name, Image: img.Reference})
		}
	}
	return fields
}

// eachContainer calls fn for every init, regular and ephemeral container in
// spec, in that order. It is the one loop over containers in this package, so
// no check can forget a kind. Ephemeral containers are passed as a
// *corev1.Container view of their EphemeralContainerCommon (the same fields).
func eachContainer(spec *corev1.PodSpec, fn func(kind ImageKind, i int, c *corev1.Container)) {
	for i := range spec.InitContainers {
		fn(ImageKindInitContainers, i, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		fn(ImageKindContainers, i, &spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		fn(ImageKindEphemeralContainers, i, (*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
}

// fieldPath returns the path of a list element, e.g. "spec.containers[1]".
func fieldPath(prefix string, kind ImageKind, i int) string {
	var b strings.Builder
	if prefix != "" {
		b.WriteString(prefix)
		b.WriteString(".")
	}
	b.WriteString(string(kind))
	b.WriteString("[")
	b.WriteString(strconv.Itoa(i))
	b.WriteString("]")
	return b.String()
}

// joinPath appends a dot-separated field to a path; an empty prefix gives
// the field alone.
func joinPath(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}
