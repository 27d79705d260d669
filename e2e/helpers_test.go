//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/e2e/harness"
)

var getOpts = metav1.GetOptions{}

// deniedBySigngate is the prefix of every denial signgate's validating
// webhook gives through the API server.
var deniedBySigngate = fmt.Sprintf("admission webhook %q denied the request", harness.ValidatingWebhookName)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a namespace (with its default ServiceAccount) for t.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns, err := env.CreateNamespace(testContext(t), "e2e", labels)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// repo is a repository name unique to t (and suffix).
func repo(t *testing.T, suffix string) string {
	t.Helper()
	r := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return "e2e/" + r + "/" + suffix
}

// pushSigned pushes a random image to reg as repo:v1 and signs it with key.
func pushSigned(t *testing.T, reg *harness.Registry, key harness.KeyPair, layout harness.Layout, repo string) name.Digest {
	t.Helper()
	d, err := reg.PushSigned(testContext(t), env.Cosign, key, layout, repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pushUnsigned pushes a random image to reg as repo:v1 and signs nothing.
func pushUnsigned(t *testing.T, reg *harness.Registry, repo string) name.Digest {
	t.Helper()
	d, err := reg.PushRandom(testContext(t), repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// trust makes an ImagePolicy in ns trusting keys for everything in reg.
func trust(t *testing.T, ns string, reg *harness.Registry, keys ...harness.KeyPair) {
	t.Helper()
	p := harness.ImagePolicy(ns, "trust", harness.PolicySpec{Images: []string{reg.Host + "/**"}, Keys: keys})
	if err := env.ApplyPolicy(testContext(t), p); err != nil {
		t.Fatal(err)
	}
}

// createPod creates pod in ns and returns the stored pod.
func createPod(t *testing.T, ns string, pod *corev1.Pod) (*corev1.Pod, error) {
	t.Helper()
	return env.Client.CoreV1().Pods(ns).Create(testContext(t), pod, metav1.CreateOptions{})
}

// mustAdmit fails t unless err is nil.
func mustAdmit(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: want admitted, got %v", what, err)
	}
}

// mustDeny fails t unless err is a signgate denial containing every one of
// wants; it returns the message.
func mustDeny(t *testing.T, what string, err error, wants ...string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: admitted, want denied by %s", what, harness.ValidatingWebhookName)
	}
	msg := err.Error()
	t.Logf("%s: denied: %s", what, msg)
	for _, w := range append([]string{deniedBySigngate}, wants...) {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: denial %q does not contain %q", what, msg, w)
		}
	}
	return msg
}

// pinnedAs fails t unless image is ref (a tag reference) pinned to d:
// "HOST/repo:tag@sha256:…".
func pinnedAs(t *testing.T, image, tagRef string, d name.Digest) {
	t.Helper()
	if want := tagRef + "@" + d.DigestStr(); image != want {
		t.Errorf("stored image = %q, want %q", image, want)
	}
}

func anyContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func itoa(i int) string { return fmt.Sprint(i) }
