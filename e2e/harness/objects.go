//go:build e2e

package harness

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// RestrictedPod is a pod that passes Pod Security "restricted": one
// container per image, non-root, no privilege escalation, all capabilities
// dropped, RuntimeDefault seccomp.
func RestrictedPod(name string, images ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
	for i, img := range images {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name:            fmt.Sprintf("c%d", i),
			Image:           img,
			SecurityContext: RestrictedContainerSecurityContext(),
		})
	}
	return pod
}

// RestrictedContainerSecurityContext is the container part of "restricted".
func RestrictedContainerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// PrivilegedPod is a pod with one privileged container: denied by every
// Pod Security level but "privileged".
func PrivilegedPod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:            "c0",
			Image:           image,
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		}}},
	}
}

// BaselinePod passes "baseline" but not "restricted": a plain container
// with no security context at all.
func BaselinePod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c0", Image: image}}},
	}
}

// RestrictedDeployment is a one-replica Deployment whose template is
// RestrictedPod(name, image).
func RestrictedDeployment(name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	pod := RestrictedPod(name, image)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       pod.Spec,
			},
		},
	}
}

// Policy resources (API group signgate.dev/v1alpha1).
var (
	ImagePolicyGVR        = schema.GroupVersionResource{Group: "signgate.dev", Version: "v1alpha1", Resource: "imagepolicies"}
	ClusterImagePolicyGVR = schema.GroupVersionResource{Group: "signgate.dev", Version: "v1alpha1", Resource: "clusterimagepolicies"}
	TrustRootGVR          = schema.GroupVersionResource{Group: "signgate.dev", Version: "v1alpha1", Resource: "trustroots"}
)

// PolicySpec is the spec of an ImagePolicy or ClusterImagePolicy
// (docs/policies.md), in the terms a test writes it.
type PolicySpec struct {
	Images            []string          // globs
	Mode              string            // "" = the CRD default (enforce)
	Threshold         int               // 0 = the CRD default (1)
	Keys              []KeyPair         // one authority per key, named after it
	Static            string            // "pass" | "fail" instead of Keys
	NamespaceSelector map[string]string // ClusterImagePolicy only: matchLabels
}

func (s PolicySpec) object() map[string]any {
	images := make([]any, 0, len(s.Images))
	for _, g := range s.Images {
		images = append(images, map[string]any{"glob": g})
	}
	spec := map[string]any{"images": images}
	if s.Mode != "" {
		spec["mode"] = s.Mode
	}
	if s.Threshold != 0 {
		spec["threshold"] = int64(s.Threshold)
	}
	if s.Static != "" {
		spec["static"] = map[string]any{"action": s.Static}
	}
	if len(s.Keys) > 0 {
		auths := make([]any, 0, len(s.Keys))
		for _, k := range s.Keys {
			auths = append(auths, map[string]any{"name": k.Name, "key": map[string]any{"data": string(k.PublicPEM)}})
		}
		spec["authorities"] = auths
	}
	if s.NamespaceSelector != nil {
		ml := map[string]any{}
		for k, v := range s.NamespaceSelector {
			ml[k] = v
		}
		spec["namespaceSelector"] = map[string]any{"matchLabels": ml}
	}
	return spec
}

// ImagePolicy builds a namespaced ImagePolicy.
func ImagePolicy(namespace, name string, spec PolicySpec) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "signgate.dev/v1alpha1",
		"kind":       "ImagePolicy",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec":       spec.object(),
	}}
}

// ClusterImagePolicy builds a ClusterImagePolicy.
func ClusterImagePolicy(name string, spec PolicySpec) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "signgate.dev/v1alpha1",
		"kind":       "ClusterImagePolicy",
		"metadata":   map[string]any{"name": name},
		"spec":       spec.object(),
	}}
}
