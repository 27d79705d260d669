package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/policy/v1alpha1"
)

// secretGets counts the Secret gets the fake clientset saw, by
// "namespace/name".
func secretGets(kube *kubefake.Clientset) map[string]int {
	n := map[string]int{}
	for _, a := range kube.Actions() {
		if g, ok := a.(clienttesting.GetAction); ok && a.GetResource().Resource == "secrets" {
			n[g.GetNamespace()+"/"+g.GetName()]++
		}
	}
	return n
}

// TestSecretCacheFailures: failed reads (not found, forbidden, anything
// else) are cached for the failure TTL, successes for the longer TTL; a
// Secret created after a failed read is seen once the failure TTL passed.
func TestSecretCacheFailures(t *testing.T) {
	t.Parallel()
	kube := kubefake.NewClientset(pemSecret("ns", "ok", "v1"))
	kube.PrependReactor("get", "secrets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		switch a.(clienttesting.GetAction).GetName() {
		case "locked":
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "locked", errors.New("rbac"))
		case "flaky":
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	c := newSecretCache(kube, 30*time.Second, 5*time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	ctx := t.Context()
	get := func(name string) (map[string][]byte, error) { return c.get(ctx, "ns", name, time.Second) }

	for range 3 { // three compilations within the failure TTL
		if _, err := get("missing"); !apierrors.IsNotFound(err) {
			t.Errorf("missing: err = %v, want NotFound", err)
		}
		if _, err := get("locked"); !apierrors.IsForbidden(err) {
			t.Errorf("locked: err = %v, want Forbidden", err)
		}
		if _, err := get("flaky"); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("flaky: err = %v", err)
		}
		if d, err := get("ok"); err != nil || string(d["cosign.pub"]) != "v1" {
			t.Errorf("ok: %q, %v", d["cosign.pub"], err)
		}
	}
	want := map[string]int{"ns/missing": 1, "ns/locked": 1, "ns/flaky": 1, "ns/ok": 1}
	if diff := cmp.Diff(want, secretGets(kube)); diff != "" {
		t.Errorf("gets within the failure TTL (-want +got):\n%s", diff)
	}

	// Created a moment after the failed read: not seen within the failure
	// TTL (the documented price of the negative cache), seen after it.
	if _, err := kube.CoreV1().Secrets("ns").Create(ctx, pemSecret("ns", "missing", "late"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(4 * time.Second)
	if _, err := get("missing"); !apierrors.IsNotFound(err) {
		t.Errorf("within the failure TTL: err = %v, want the cached NotFound", err)
	}
	now = now.Add(time.Second)
	c.prune()
	if _, ok := c.entries[secretName{"ns", "locked"}]; ok {
		t.Error("prune kept an expired failure")
	}
	if _, ok := c.entries[secretName{"ns", "ok"}]; !ok {
		t.Error("prune dropped a success within SecretTTL")
	}
	if d, err := get("missing"); err != nil || string(d["cosign.pub"]) != "late" {
		t.Errorf("after the failure TTL: %q, %v; want the new Secret", d["cosign.pub"], err)
	}
	want = map[string]int{"ns/missing": 2, "ns/locked": 1, "ns/flaky": 1, "ns/ok": 1}
	if diff := cmp.Diff(want, secretGets(kube)); diff != "" {
		t.Errorf("gets after the failure TTL (-want +got):\n%s", diff)
	}

	// A canceled caller's error says nothing about the Secret: not cached.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.get(canceled, "ns", "gone", time.Second); err == nil {
		t.Error("gone: nil error")
	}
	if _, ok := c.entries[secretName{"ns", "gone"}]; ok {
		t.Error("a failure under a canceled context was cached")
	}
}

// TestSecretCacheFill: fill reads the uncached Secrets concurrently, never
// more than secretReadLimit at once, each once, and caches failures, so the
// next fill within the TTLs reads nothing.
func TestSecretCacheFill(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		reads    = map[secretName]int{}
		inFlight atomic.Int32
		maxSeen  atomic.Int32
		release  = make(chan struct{})
		once     sync.Once
	)
	c := newSecretCache(nil, time.Hour, time.Hour)
	c.read = func(ctx context.Context, ns, name string) (*corev1.Secret, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxSeen.Load(); n > m && !maxSeen.CompareAndSwap(m, n); m = maxSeen.Load() {
		}
		mu.Lock()
		reads[secretName{ns, name}]++
		mu.Unlock()
		// The first reads wait until secretReadLimit of them run at once:
		// reads one after the other would never get there.
		if n == secretReadLimit {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-time.After(hangGuard):
			return nil, errors.New("reads not concurrent")
		}
		if strings.HasPrefix(name, "missing") {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
		}
		return pemSecret(ns, name, "k"), nil
	}
	var keys []secretName
	for i := range 40 {
		keys = append(keys, secretName{fmt.Sprintf("ns-%d", i%4), fmt.Sprintf("missing-%d", i)})
	}
	keys = append(keys, secretName{"gate", "release"})
	c.fill(t.Context(), keys, time.Second)
	if got := maxSeen.Load(); got != secretReadLimit {
		t.Errorf("at most %d reads at once, want exactly %d", got, secretReadLimit)
	}
	for _, k := range keys {
		if reads[k] != 1 {
			t.Errorf("%v read %d times, want 1", k, reads[k])
		}
		e, ok := c.cached(k)
		if !ok {
			t.Errorf("%v not cached after fill", k)
		}
		if strings.HasPrefix(k.Name, "missing") && !apierrors.IsNotFound(e.err) {
			t.Errorf("%v: cached err %v, want NotFound", k, e.err)
		}
	}
	c.fill(t.Context(), keys, time.Second)
	total := 0
	for _, n := range reads {
		total += n
	}
	if total != len(keys) {
		t.Errorf("second fill: %d reads in all, want %d (none new)", total, len(keys))
	}
}

// TestClusterSourceBrokenNamespacePolicy: namespaced policies pointing at
// many missing Secrets do not hold up the others. The first compilation
// serves the ClusterImagePolicy, marks the broken policies invalid (their
// images in their namespace denied, naming the policy) and reads each
// Secret once; later compilations within the failure TTL read none.
func TestClusterSourceBrokenNamespacePolicy(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	cipGVR, ipGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource
	objs := []runtime.Object{clusterPolicy(t, "corp", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: secretKeySpec("registry.example.com/**", "release")})}
	kubeObjs := []runtime.Object{pemSecret("signgate-system", "release", keys["P256"])}
	const namespaces, refs = 4, 32
	for n := range namespaces {
		ns := fmt.Sprintf("team-%d", n)
		kubeObjs = append(kubeObjs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{corev1.LabelMetadataName: ns}}})
		spec := v1alpha1.ImagePolicySpec{Images: []v1alpha1.ImageGlob{{Glob: "quay.io/" + ns + "/*"}}}
		for i := range refs {
			spec.Authorities = append(spec.Authorities, v1alpha1.Authority{
				Name: fmt.Sprintf("k%d", i),
				// Two authorities per Secret name: still one read each.
				Key: &v1alpha1.KeySource{SecretRef: &v1alpha1.SecretKeyRef{Name: fmt.Sprintf("missing-%d", i/2), Key: "cosign.pub"}},
			})
		}
		objs = append(objs, imagePolicy(t, ns, "broken", spec))
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", v1alpha1.TrustRootResource: "TrustRootList"}, objs...)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(kubeObjs...)
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{Resync: time.Hour, SecretTTL: time.Hour, SecretFailureTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := startSource(t, s)

	// The first compilation (Ready) already serves everything.
	snap := s.Snapshot()
	corp := req{Policy: "ClusterImagePolicy corp", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"k"}}
	for n := range namespaces {
		ns := fmt.Sprintf("team-%d", n)
		labels, err := snap.Namespace(ns)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]req{corp}, summarize(snap.Requirements(ns, labels, imageref.ParseRepo("registry.example.com/app")))); diff != "" {
			t.Errorf("%s: ClusterImagePolicy (-want +got):\n%s", ns, diff)
		}
		rs := snap.Requirements(ns, labels, imageref.ParseRepo("quay.io/"+ns+"/app"))
		if len(rs) != 1 || rs[0].Err == nil || rs[0].Mode != ModeEnforce ||
			!strings.Contains(rs[0].Err.Error(), "ImagePolicy "+ns+"/broken is invalid") ||
			!strings.Contains(rs[0].Err.Error(), `secrets "missing-0" not found`) {
			t.Errorf("%s: broken policy's images: %+v, want one enforcing requirement with an error naming the policy", ns, summarize(rs))
		}
		// Another namespace's images are not affected by it.
		if rs := snap.Requirements(ns, labels, imageref.ParseRepo("quay.io/other/app")); len(rs) != 0 {
			t.Errorf("%s: unrelated image: %+v, want none", ns, summarize(rs))
		}
	}
	if got := len(s.InvalidPolicies()); got != namespaces {
		t.Errorf("InvalidPolicies() has %d entries, want %d", got, namespaces)
	}

	// Invalid policies still get their status condition.
	waitFor(t, func() bool {
		u, err := dyn.Resource(ipGVR).Namespace("team-3").Get(ctx, "broken", metav1.GetOptions{})
		c := readyCondition(t, u)
		return err == nil && c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonInvalid
	})

	// A later compilation (after an edit) reads no Secret again.
	u, err := dyn.Resource(cipGVR).Get(ctx, "corp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.SetGeneration(2)
	if _, err := dyn.Resource(cipGVR).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		u, err := dyn.Resource(cipGVR).Get(ctx, "corp", metav1.GetOptions{})
		c := readyCondition(t, u)
		return err == nil && c != nil && c.ObservedGeneration == 2
	})
	gets := secretGets(kube)
	if len(gets) != namespaces*refs/2+1 {
		t.Errorf("%d Secrets read, want %d", len(gets), namespaces*refs/2+1)
	}
	for k, n := range gets {
		if n != 1 {
			t.Errorf("Secret %s read %d times, want once", k, n)
		}
	}
}
