//go:build e2e

package e2e

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
)

// Env.Apply puts rendered manifests (e.g. `helm template` output) into the
// API server, resolving kinds through discovery, create or update.
func TestApplyManifests(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	objs, err := harness.DecodeManifests([]byte(`
apiVersion: v1
kind: ConfigMap
metadata: {name: gate-config, namespace: ` + ns + `}
data: {config.yaml: "unmatchedImages: deny"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-apply-` + ns + `}
rules: [{apiGroups: [signgate.dev], resources: [imagepolicies], verbs: [get, list, watch]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second round updates
		if err := env.Apply(ctx, objs...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "gate-config", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if _, err := env.Client.RbacV1().ClusterRoles().Get(ctx, "e2e-apply-"+ns, metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}
