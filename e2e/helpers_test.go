//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/signgate/signgate/e2e/harness"
)

var getOpts = metav1.GetOptions{}

// hangGuard bounds every wait of the suite and each test's context. It only
// stops a hung test; it is sized so that a loaded 2-core machine never
// meets it, and no test asserts anything about time with it: what a test
// waits for is a condition (waitFor), and speed is measured and logged
// ("measure: ..."), never asserted.
const hangGuard = 3 * time.Minute

// pollInterval is how often waitFor checks its condition.
const pollInterval = 100 * time.Millisecond

// deniedBySigngate is the prefix of every denial signgate's validating
// webhook gives through the API server.
var deniedBySigngate = fmt.Sprintf("admission webhook %q denied the request", harness.ValidatingWebhookName)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// cleanupContext is a context for a t.Cleanup function, bounded by the hang
// guard. Not testContext: t.Context() is canceled before cleanups run.
func cleanupContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
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

// waitFor calls check every pollInterval until it reports done. check
// returns what it last saw when not done, for the failure message, and
// calls t.Fatal itself when what it sees can no longer turn into done.
// Only hangGuard (or ctx) ends the wait otherwise: the test then fails
// saying what it awaited.
func waitFor(ctx context.Context, t *testing.T, what string, check func() (done bool, last error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	for {
		done, last := check()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: gave up (%v, hang guard %s); last seen: %v", what, ctx.Err(), hangGuard, last)
		case <-time.After(pollInterval):
		}
	}
}

// waitAdmitted calls dryRun (a dry-run create) until it succeeds, retrying
// while an admission webhook denies: signgate sees a new or edited policy
// through an informer, a moment after it is stored. Any other error fails
// t. A test then makes the request it asserts on once, decided under the
// policy.
func waitAdmitted(ctx context.Context, t *testing.T, what string, dryRun func() error) {
	t.Helper()
	waitFor(ctx, t, what+" to be admitted (dry run)", func() (bool, error) {
		err := dryRun()
		if err != nil && !strings.Contains(err.Error(), "denied the request") {
			t.Fatalf("dry run of %s: %v", what, err)
		}
		return err == nil, err
	})
}

// dryRunCreatePod returns a func that dry-run creates pod in ns.
func dryRunCreatePod(ctx context.Context, ns string, pod *corev1.Pod) func() error {
	return func() error {
		_, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
}

// trustPolicy is the ImagePolicy "trust" in ns trusting keys (any one of
// them: threshold 1) for everything in reg.
func trustPolicy(ns string, reg *harness.Registry, keys ...harness.KeyPair) *unstructured.Unstructured {
	return harness.ImagePolicy(ns, "trust", harness.PolicySpec{Images: []string{reg.Host + "/**"}, Keys: keys})
}

// trust makes an ImagePolicy in ns trusting keys for everything in reg, and
// returns once signgate decides under it: once it admits in ns, for each
// of keys, a probe image signed by that key (dry runs). Without that wait a
// test's next request could be decided before the gate's informer has the
// policy, its outcome then a matter of timing.
func trust(t *testing.T, ns string, reg *harness.Registry, keys ...harness.KeyPair) {
	t.Helper()
	ctx := testContext(t)
	if err := env.ApplyPolicy(ctx, trustPolicy(ns, reg, keys...)); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		probe := probeImage(t, reg, k)
		waitAdmitted(ctx, t, fmt.Sprintf("probe %s (signed by %s) in %s after trusting %s", probe, k.Name, ns, k.Name),
			dryRunCreatePod(ctx, ns, harness.RestrictedPod("trust-probe", probe.String())))
	}
}

// probes holds one signed probe image per registry and key, pushed on
// first use (repository e2e/probe/<key>, used by nothing else).
var probes struct {
	sync.Mutex
	m map[string]name.Digest
}

// probeImage is reg's probe image signed by key (see trust).
func probeImage(t *testing.T, reg *harness.Registry, key harness.KeyPair) name.Digest {
	t.Helper()
	probes.Lock()
	defer probes.Unlock()
	id := reg.Host + " " + key.Name
	if d, ok := probes.m[id]; ok {
		return d
	}
	d, err := reg.PushSigned(testContext(t), env.Cosign, key, harness.Classic, "e2e/probe/"+key.Name, "v1")
	if err != nil {
		t.Fatalf("push the probe image signed by %s: %v", key.Name, err)
	}
	if probes.m == nil {
		probes.m = map[string]name.Digest{}
	}
	probes.m[id] = d
	return d
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
