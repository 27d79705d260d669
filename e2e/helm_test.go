//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/signgate/signgate/e2e/harness"
)

// helmTemplate renders charts/signgate with bin/helm as release in
// namespace, with args (helm template flags such as --set), and returns
// the objects of templates (file names without ".yaml"; none: all). It
// fails t when helm fails or renders nothing.
func helmTemplate(ctx context.Context, t *testing.T, release, namespace string, args []string, templates ...string) []*unstructured.Unstructured {
	t.Helper()
	helm := filepath.Join(env.Root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("%s: %v (run make e2e-tools)", helm, err)
	}
	all := append([]string{"template", release, filepath.Join(env.Root, "charts", "signgate"), "-n", namespace}, args...)
	for _, tpl := range templates {
		all = append(all, "--show-only", "templates/"+tpl+".yaml")
	}
	cmd := exec.CommandContext(ctx, helm, all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(all, " "), err, stderr.String())
	}
	objs, err := harness.DecodeManifests(out)
	if err != nil {
		t.Fatalf("decode rendered %v: %v", templates, err)
	}
	if len(objs) == 0 {
		t.Fatalf("helm rendered nothing for %v", templates)
	}
	return objs
}

// renderedConfig is data."config.yaml" of the rendered ConfigMap in objs:
// the GateConfiguration the chart gives the gate.
func renderedConfig(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			if cfg, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml"); cfg != "" {
				return cfg
			}
		}
	}
	t.Fatal("no rendered ConfigMap has data.config.yaml")
	return ""
}

// renderedDeployment converts the single rendered Deployment in objs.
func renderedDeployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	if len(objs) != 1 || objs[0].GetKind() != "Deployment" {
		t.Fatalf("rendered deployment.yaml: %d objects, want one Deployment", len(objs))
	}
	var dep appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &dep); err != nil {
		t.Fatal(err)
	}
	return &dep
}

// uniqueRelease is prefix-<8 hex digits>: a release name no other test or
// run uses, so cluster-scoped objects named after it never clash.
func uniqueRelease(t *testing.T, prefix string) string {
	t.Helper()
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(suffix)
}
