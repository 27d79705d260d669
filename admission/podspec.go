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
	Meta   *metav1.ObjectMeta
	Spec   *corev1.PodSpec
	// Workload is true for templates (everything but a Pod).
	Workload bool
}

// workloadKind describes where a kind keeps its pod spec.
type workloadKind struct {
	prefix string
	decode func(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error)
}

// groupKind keys the table; versions are ignored because every served
// version of these kinds keeps the template at the same path.
type groupKind struct{ group, kind string }

// kinds is every kind the gate understands: Pods and every built-in kind
// with a pod template.
var kinds = map[groupKind]workloadKind{
	{"", "Pod"}:                   {"spec", decodePod},
	{"apps", "Deployment"}:        {"spec.template.spec", decodeTemplateSpec},
	{"apps", "ReplicaSet"}:        {"spec.template.spec", decodeTemplateSpec},
	{"apps", "StatefulSet"}:       {"spec.template.spec", decodeTemplateSpec},
	{"apps", "DaemonSet"}:         {"spec.template.spec", decodeTemplateSpec},
	{"batch", "Job"}:              {"spec.template.spec", decodeTemplateSpec},
	{"", "ReplicationController"}: {"spec.template.spec", decodeReplicationController},
	{"batch", "CronJob"}:          {"spec.jobTemplate.spec.template.spec", decodeCronJob},
	{"", "PodTemplate"}:           {"template.spec", decodePodTemplate},
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

func decodePod(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     corev1.PodSpec    `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return &o.Metadata, &o.Spec, nil
}

// decodeTemplateSpec decodes the kinds whose template is spec.template.
func decodeTemplateSpec(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, nil
}

// decodeReplicationController: its template is optional (a pointer).
func decodeReplicationController(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	if o.Spec.Template == nil {
		return &metav1.ObjectMeta{}, &corev1.PodSpec{}, nil
	}
	return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, nil
}

func decodeCronJob(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Spec struct {
			JobTemplate struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	t := &o.Spec.JobTemplate.Spec.Template
	return &t.ObjectMeta, &t.Spec, nil
}

func decodePodTemplate(raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	var o struct {
		Template corev1.PodTemplateSpec `json:"template"`
	}
	if err := unmarshal(raw, &o); err != nil {
		return nil, nil, err
	}
	return &o.Template.ObjectMeta, &o.Template.Spec, nil
}
