package admission

import (
	"bytes"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// podTemplate is the pod inside an admitted object: the pod's own metadata
// and spec for a Pod, the template's for a workload.
type podTemplate struct {
	// Prefix is the dot-separated path of Spec in the object, as taken by
	// policy.ImageField.Path: "spec", "spec.template.spec", ...
	Prefix string
	// Meta holds only the fields of objectMeta; the rest are not decoded.
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
	// Workload is true for templates (everything but a Pod).
	Workload bool
}

// workloadKind describes where a kind keeps its pod spec.
type workloadKind struct {
	prefix   string
	resource string // the resource the API server names in reviews
	decode   func(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error)
}

// groupKind keys the table; versions are ignored because every served
// version of these kinds keeps the template at the same path.
type groupKind struct{ group, kind string }

// kinds is every kind the gate understands: Pods and every built-in kind
// with a pod template. The webhooks are registered for these
// (docs/admission.md) and KindOf answers from it.
var kinds = map[groupKind]workloadKind{
	{"", "Pod"}:                   {"spec", "pods", decodePod},
	{"apps", "Deployment"}:        {"spec.template.spec", "deployments", decodeTemplateSpec},
	{"apps", "ReplicaSet"}:        {"spec.template.spec", "replicasets", decodeTemplateSpec},
	{"apps", "StatefulSet"}:       {"spec.template.spec", "statefulsets", decodeTemplateSpec},
	{"apps", "DaemonSet"}:         {"spec.template.spec", "daemonsets", decodeTemplateSpec},
	{"batch", "Job"}:              {"spec.template.spec", "jobs", decodeTemplateSpec},
	{"", "ReplicationController"}: {"spec.template.spec", "replicationcontrollers", decodeReplicationController},
	{"batch", "CronJob"}:          {"spec.jobTemplate.spec.template.spec", "cronjobs", decodeCronJob},
	{"", "PodTemplate"}:           {"template.spec", "podtemplates", decodePodTemplate},
}

// errNoObject is returned for a missing or null object.
var errNoObject = errors.New("the request carries no object")

// extractPod decodes raw (an object of kind gk) and returns its pod.
// It decodes only the metadata and pod spec into typed structs, with the
// API server's own case-sensitive JSON rules, so the gate sees exactly the
// fields the API server stores.
func extractPod(gk groupKind, raw []byte) (podTemplate, error) {
	k, ok := kinds[gk]
	if !ok {
		return podTemplate{}, fmt.Errorf("kind %s is not supported by signgate", gk)
	}
	if isNull(raw) {
		return podTemplate{}, errNoObject
	}
	meta, spec, err := k.decode(raw)
	if err != nil {
		return podTemplate{}, fmt.Errorf("decode %s: %w", gk, err)
	}
	return podTemplate{Prefix: k.prefix, Meta: meta, Spec: spec, Workload: gk.kind != "Pod"}, nil
}

func (gk groupKind) String() string {
	if gk.group == "" {
		return gk.kind
	}
	return gk.kind + "." + gk.group
}

func isNull(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

func unmarshal(raw []byte, v any) error {
	return kjson.UnmarshalCaseSensitivePreserveInts(raw, v)
}

// objectMeta is the part of an object's metadata the gate decodes: Pod
// Security reads the annotations (AppArmor and seccomp), update.go
// compares them, and the names, labels and owners are kept for anything
// that describes the pod. Everything else — managedFields above all, a few
// kB that the API server sends with every request — is skipped by the
// decoder without being allocated.
type objectMeta struct {
	Name            string                  `json:"name,omitempty"`
	GenerateName    string                  `json:"generateName,omitempty"`
	Namespace       string                  `json:"namespace,omitempty"`
	Labels          map[string]string       `json:"labels,omitempty"`
	Annotations     map[string]string       `json:"annotations,omitempty"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
}

// objectMeta returns m as the ObjectMeta that Pod Security takes.
func (m *objectMeta) objectMeta() *metav1.ObjectMeta {
	return &metav1.ObjectMeta{
		Name:            m.Name,
		GenerateName:    m.GenerateName,
		Namespace:       m.Namespace,
		Labels:          m.Labels,
		Annotations:     m.Annotations,
		OwnerReferences: m.OwnerReferences,
	}
}

// podTemplateSpec is corev1.PodTemplateSpec with only objectMeta decoded.
type podTemplateSpec struct {
	Metadata objectMeta     `json:"metadata,omitempty"`
	Spec     corev1.PodSpec `json:"spec,omitempty"`
}

func (t *podTemplateSpec) parts() (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	return t.Metadata.objectMeta(), &t.Spec, nil
}

func decodePod(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o podTemplateSpec // a Pod's metadata and spec have the same names
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return o.parts()
}

// decodeTemplateSpec decodes the kinds whose template is spec.template.
func decodeTemplateSpec(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Spec struct {
			Template podTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return o.Spec.Template.parts()
}

// decodeReplicationController: its template is optional (a pointer).
func decodeReplicationController(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Spec struct {
			Template *podTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	if o.Spec.Template == nil {
		return &metav1.ObjectMeta{}, &corev1.PodSpec{}, nil
	}
	return o.Spec.Template.parts()
}

func decodeCronJob(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Spec struct {
			JobTemplate struct {
				Spec struct {
					Template podTemplateSpec `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return o.Spec.JobTemplate.Spec.Template.parts()
}

func decodePodTemplate(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Template podTemplateSpec `json:"template"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return o.Template.parts()
}
