package admission

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestExtractPodMetadata: every kind yields the metadata fields the gate
// and Pod Security read, as a full ObjectMeta decode would, with
// managedFields (and the rest) left out.
func TestExtractPodMetadata(t *testing.T) {
	t.Parallel()
	const meta = `{
		"name": "web-1", "generateName": "web-", "namespace": "team-a",
		"uid": "6b1c1d4e-0000-4000-8000-000000000002",
		"labels": {"app": "web"},
		"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
		"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "6b1c1d4e-0000-4000-8000-000000000001", "controller": true}],
		"managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
	}`
	const spec = `{"containers": [{"name": "app", "image": "registry.example/app:v1"}]}`
	template := `{"metadata": ` + meta + `, "spec": ` + spec + `}`
	tests := []struct {
		name string
		gk   groupKind
		raw  string
	}{
		{"pod", groupKind{"", "Pod"}, `{"apiVersion": "v1", "kind": "Pod", "metadata": ` + meta + `, "spec": ` + spec + `}`},
		{"deployment", groupKind{"apps", "Deployment"}, `{"spec": {"template": ` + template + `}}`},
		{"replication controller", groupKind{"", "ReplicationController"}, `{"spec": {"template": ` + template + `}}`},
		{"cronjob", groupKind{"batch", "CronJob"}, `{"spec": {"jobTemplate": {"spec": {"template": ` + template + `}}}}`},
		{"pod template", groupKind{"", "PodTemplate"}, `{"template": ` + template + `}`},
	}
	var full struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     corev1.PodSpec    `json:"spec"`
	}
	if err := unmarshal([]byte(template), &full); err != nil {
		t.Fatal(err)
	}
	want := &metav1.ObjectMeta{
		Name:            full.Metadata.Name,
		GenerateName:    full.Metadata.GenerateName,
		Namespace:       full.Metadata.Namespace,
		Labels:          full.Metadata.Labels,
		Annotations:     full.Metadata.Annotations,
		OwnerReferences: full.Metadata.OwnerReferences,
	}
	if len(full.Metadata.ManagedFields) == 0 || len(want.OwnerReferences) == 0 {
		t.Fatal("the test object lost its managedFields or owner")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pod, err := extractPod(tt.gk, []byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, pod.Meta); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(&full.Spec, pod.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
	// A malformed field that is read still fails the decode.
	bad := strings.Replace(tests[0].raw, `"labels": {"app": "web"}`, `"labels": ["app"]`, 1)
	if _, err := extractPod(groupKind{"", "Pod"}, []byte(bad)); err == nil {
		t.Error("labels of the wrong type decoded")
	}
}
