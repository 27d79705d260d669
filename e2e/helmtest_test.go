//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The chart's probe `helm test` Pod (templates/tests/test-probe.yaml)
// against the suite's running gate. The suite has no kubelet, so the Pod
// never runs: the test runs its command line (the rendered Pod's args)
// with bin/signgate, its --url pointed at the suite's gate instead of the
// release's Service and its --ca-file at the suite's CA, which stands in
// for the ca.crt the Pod mounts from the chart's TLS Secret. The gate then
// answers both webhooks the way it answers the API server.
func TestHelmTestProbe(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ns := namespace(t, nil)
	release := uniqueRelease(t, "probe")
	objs := helmTemplate(ctx, t, release, ns, nil, "tests/test-probe")
	if len(objs) != 1 || objs[0].GetKind() != "Pod" {
		t.Fatalf("tests/test-probe.yaml rendered %d objects, want one Pod", len(objs))
	}
	pod := objs[0]
	if hook := pod.GetAnnotations()["helm.sh/hook"]; hook != "test" {
		t.Fatalf("Pod %s: helm.sh/hook %q, want test", pod.GetName(), hook)
	}
	containers, _, _ := unstructured.NestedSlice(pod.Object, "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("test Pod: %d containers, want 1", len(containers))
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	flagIndex := func(flag string) int {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("test Pod args %v: no %s VALUE", args, flag)
		}
		return i + 1
	}
	urlAt, caAt := flagIndex("--url"), flagIndex("--ca-file")
	if want := "https://" + release + "-signgate." + ns + ".svc:443"; args[0] != "probe" || args[urlAt] != want || args[caAt] != "/tls/ca.crt" {
		t.Fatalf("test Pod args %v, want probe --url %s --ca-file /tls/ca.crt", args, want)
	}

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, env.CA.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	run := slices.Clone(args)
	run[urlAt], run[caAt] = env.Signgate.URL, caFile
	stdout, stderr, code := signgate(t, run...)
	t.Logf("signgate %s\nexit %d\nstdout: %s\nstderr: %s", strings.Join(run, " "), code, stdout, stderr)
	answered := regexp.MustCompile(`^mutate: answered \((allowed|denied: [^\n]+)\) in \d+ms\nvalidate: answered \((allowed|denied: [^\n]+)\) in \d+ms\n$`)
	if code != 0 || !answered.MatchString(stdout) || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and both webhooks answered", code, stdout, stderr)
	}
}
