package policy

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/policy/v1alpha1"
)

func toUnstructured(t *testing.T, obj runtime.Object, kind string) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(kind)
	return u
}

func clusterPolicy(t *testing.T, name string, spec v1alpha1.ClusterImagePolicySpec) *unstructured.Unstructured {
	return toUnstructured(t, &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: spec}, KindClusterImagePolicy)
}

func imagePolicy(t *testing.T, ns, name string, spec v1alpha1.ImagePolicySpec) *unstructured.Unstructured {
	return toUnstructured(t, &v1alpha1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1}, Spec: spec}, KindImagePolicy)
}

func secretKeySpec(glob, secret string) v1alpha1.ImagePolicySpec {
	return v1alpha1.ImagePolicySpec{
		Images:      []v1alpha1.ImageGlob{{Glob: glob}},
		Authorities: []v1alpha1.Authority{{Name: "k", Key: &v1alpha1.KeySource{SecretRef: &v1alpha1.SecretKeyRef{Name: secret, Key: "cosign.pub"}}}},
	}
}

func pemSecret(ns, name, key string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"cosign.pub": []byte(key)}}
}

func readyCondition(t *testing.T, u *unstructured.Unstructured) *metav1.Condition {
	t.Helper()
	var status v1alpha1.PolicyStatus
	if m, ok := u.Object["status"].(map[string]any); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &status); err != nil {
			t.Fatal(err)
		}
	}
	return meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
}

func TestClusterSource(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	// The fake keeps unstructured objects only when the scheme does not
	// know the kinds, as with a real API server's CRDs.
	scheme := runtime.NewScheme()
	cipGVR, ipGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource
	badGlob := secretKeySpec("registry.example.com/Bad/**", "release")
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", v1alpha1.TrustRootResource: "TrustRootList"},
		clusterPolicy(t, "corp", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: secretKeySpec("registry.example.com/**", "release")}),
		clusterPolicy(t, "prod-broken", v1alpha1.ClusterImagePolicySpec{
			ImagePolicySpec:   badGlob,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		}),
		imagePolicy(t, "team-a", "ci", secretKeySpec("quay.io/team-a/*", "ci")),
	)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"env": "prod", corev1.LabelMetadataName: "team-a"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b", Labels: map[string]string{corev1.LabelMetadataName: "team-b"}}},
		pemSecret("signgate-system", "release", keys["P256"]),
		// The ImagePolicy's Secret is missing at first.
	)
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{Resync: 20 * time.Millisecond, SecretTTL: time.Hour, SecretFailureTTL: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Error("Ready() before Run")
	}
	if _, err := s.Snapshot().Namespace("team-a"); err == nil {
		t.Error("Namespace() before Run: nil error")
	}

	ctx := startSource(t, s)

	snap := s.Snapshot()
	labels, err := snap.Namespace("team-a")
	if err != nil || labels["env"] != "prod" {
		t.Errorf("Namespace(team-a) = %v, %v; want env=prod", labels, err)
	}
	if _, err := snap.Namespace("nowhere"); err == nil || !strings.Contains(err.Error(), "retry") {
		t.Errorf("Namespace(nowhere) error = %v, want a retry error", err)
	}

	corp := req{Policy: "ClusterImagePolicy corp", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"k"}}
	broken := req{Policy: "ClusterImagePolicy prod-broken", Mode: ModeEnforce,
		Err: `ClusterImagePolicy prod-broken is invalid: images[0]: compile glob "registry.example.com/Bad/**": "Bad": invalid character 'B'`}
	missing := req{Policy: "ImagePolicy team-a/ci", Mode: ModeEnforce,
		Err: `ImagePolicy team-a/ci is invalid: authority "k": read secret team-a/ci: secrets "ci" not found`}
	teamBLabels, _ := snap.Namespace("team-b")
	for _, tt := range []struct {
		ns     string
		labels map[string]string
		repo   string
		want   []req
	}{
		{"team-b", teamBLabels, "registry.example.com/app", []req{corp}},
		{"team-b", teamBLabels, "quay.io/team-a/app", nil},
		{"team-a", labels, "registry.example.com/app", []req{corp, broken}},
		{"team-a", labels, "quay.io/team-a/app", []req{broken, missing}},
	} {
		if diff := cmp.Diff(tt.want, summarize(snap.Requirements(tt.ns, tt.labels, imageref.ParseRepo(tt.repo)))); diff != "" {
			t.Errorf("Requirements(%s, %s) mismatch (-want +got):\n%s", tt.ns, tt.repo, diff)
		}
	}

	// Status: Ready False with the problem, True for the valid policy.
	waitFor(t, func() bool {
		u, err := dyn.Resource(cipGVR).Get(ctx, "prod-broken", metav1.GetOptions{})
		c := readyCondition(t, u)
		return err == nil && c != nil && c.Status == metav1.ConditionFalse && c.Message == broken.Err && c.Reason == v1alpha1.ReasonInvalid
	})
	waitFor(t, func() bool {
		u, err := dyn.Resource(cipGVR).Get(ctx, "corp", metav1.GetOptions{})
		c := readyCondition(t, u)
		return err == nil && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == 1
	})
	waitFor(t, func() bool {
		u, err := dyn.Resource(ipGVR).Namespace("team-a").Get(ctx, "ci", metav1.GetOptions{})
		c := readyCondition(t, u)
		return err == nil && c != nil && c.Status == metav1.ConditionFalse && c.Message == missing.Err
	})
	if got := len(s.InvalidPolicies()); got != 2 {
		t.Errorf("InvalidPolicies() has %d entries, want 2", got)
	}

	// Fixing the glob recompiles on the informer event and flips the status.
	u, err := dyn.Resource(cipGVR).Get(ctx, "prod-broken", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fixed := secretKeySpec("registry.example.com/prod/**", "release")
	if err := unstructured.SetNestedSlice(u.Object, []any{map[string]any{"glob": fixed.Images[0].Glob}}, "spec", "images"); err != nil {
		t.Fatal(err)
	}
	u.SetGeneration(2)
	if _, err := dyn.Resource(cipGVR).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForf(t, func() (bool, string) {
		u, err := dyn.Resource(cipGVR).Get(ctx, "prod-broken", metav1.GetOptions{})
		c := readyCondition(t, u)
		return err == nil && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == 2,
			fmt.Sprintf("prod-broken after the fix: err %v, object %v", err, u)
	})
	if rs := s.Snapshot().Requirements("team-b", teamBLabels, imageref.ParseRepo("ghcr.io/x")); len(rs) != 0 {
		t.Errorf("fixed policy still covers everything: %+v", summarize(rs))
	}

	// The missing Secret appears: the periodic recompilation reads it.
	if _, err := kube.CoreV1().Secrets("team-a").Create(ctx, pemSecret("team-a", "ci", keys["ED25519"]), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(s.InvalidPolicies()) == 0 })
	want := []req{{Policy: "ImagePolicy team-a/ci", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"k"}}}
	if diff := cmp.Diff(want, summarize(s.Snapshot().Requirements("team-a", labels, imageref.ParseRepo("quay.io/team-a/app")))); diff != "" {
		t.Errorf("after the Secret appeared (-want +got):\n%s", diff)
	}

	// Deleting a policy removes it.
	if err := dyn.Resource(cipGVR).Delete(ctx, "corp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return len(s.Snapshot().Requirements("team-b", teamBLabels, imageref.ParseRepo("registry.example.com/app"))) == 0
	})

	// Secrets are read one by one, never listed or watched cluster-wide.
	for _, a := range kube.Actions() {
		if a.GetResource().Resource == "secrets" && a.GetVerb() != "get" && a.GetVerb() != "create" {
			t.Errorf("unexpected %s on secrets", a.GetVerb())
		}
	}
}

func TestSecretCacheTTL(t *testing.T) {
	t.Parallel()
	kube := kubefake.NewClientset(pemSecret("ns", "s", "v1"))
	c := newSecretCache(kube, 30*time.Second, 5*time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	ctx := t.Context()
	get := func() string {
		d, err := c.get(ctx, "ns", "s", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return string(d["cosign.pub"])
	}
	if got := get(); got != "v1" {
		t.Fatalf("get = %q", got)
	}
	if _, err := kube.CoreV1().Secrets("ns").Update(ctx, pemSecret("ns", "s", "v2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "v1" {
		t.Errorf("within TTL: get = %q, want the cached v1", got)
	}
	now = now.Add(31 * time.Second)
	c.prune()
	if len(c.entries) != 0 {
		t.Errorf("prune left %d entries", len(c.entries))
	}
	if got := get(); got != "v2" {
		t.Errorf("after TTL: get = %q, want v2", got)
	}
}

func TestNewClusterSourceRequiresClients(t *testing.T) {
	t.Parallel()
	if _, err := NewClusterSource(nil, kubefake.NewClientset(), "ns", ClusterOptions{}); err == nil {
		t.Error("nil dynamic client: nil error")
	}
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	if _, err := NewClusterSource(dyn, kubefake.NewClientset(), "", ClusterOptions{}); err == nil {
		t.Error("empty gate namespace: nil error")
	}
}

// statusSubresource makes the fake's UpdateStatus write only .status, as
// the API server does. The fake replaces the whole object, so a status
// write from a stale informer copy would undo a spec update made in
// between (the API server would answer it with a conflict instead).
func statusSubresource(dyn *dynamicfake.FakeDynamicClient) {
	dyn.PrependReactor("update", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ua, ok := a.(clienttesting.UpdateAction)
		if !ok || ua.GetSubresource() != "status" {
			return false, nil, nil
		}
		obj, ok := ua.GetObject().(*unstructured.Unstructured)
		if !ok {
			return false, nil, nil
		}
		cur, err := dyn.Tracker().Get(ua.GetResource(), ua.GetNamespace(), obj.GetName())
		if err != nil {
			return true, nil, err
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur.DeepCopyObject())
		if err != nil {
			return true, nil, err
		}
		merged := &unstructured.Unstructured{Object: u}
		merged.Object["status"] = runtime.DeepCopyJSONValue(obj.Object["status"])
		if err := dyn.Tracker().Update(ua.GetResource(), merged, ua.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, merged, nil
	})
}

// waitForf is waitFor that says what it saw last when it gives up.
func waitForf(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s; last: %s", hangGuard, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterSourceReadOnly: the source signgate check uses reads the
// cluster and never writes (no status update, even for an invalid policy),
// is waited for without polling, and lays NamespaceLabels over the
// cluster's namespaces, including namespaces the cluster does not have yet.
func TestClusterSourceReadOnly(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	cipGVR, ipGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", v1alpha1.TrustRootResource: "TrustRootList"},
		clusterPolicy(t, "prod", v1alpha1.ClusterImagePolicySpec{
			ImagePolicySpec:   secretKeySpec("registry.example.com/**", "release"),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		}),
		clusterPolicy(t, "broken", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: secretKeySpec("quay.io/**", "missing")}),
	)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"env": "dev", corev1.LabelMetadataName: "team-a"}}},
		pemSecret("signgate-system", "release", keys["P256"]),
	)
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{
		ReadOnly: true,
		NamespaceLabels: map[string]map[string]string{
			"team-a": {"env": "prod"}, // overrides the cluster's env=dev
			"new-ns": {"env": "prod"}, // created by the manifests being checked
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	startSource(t, s)
	snap := s.Snapshot()
	for ns, want := range map[string]map[string]string{
		"team-a": {"env": "prod", corev1.LabelMetadataName: "team-a"},
		"new-ns": {"env": "prod", corev1.LabelMetadataName: "new-ns"},
	} {
		labels, err := snap.Namespace(ns)
		if err != nil {
			t.Fatalf("Namespace(%s): %v", ns, err)
		}
		if diff := cmp.Diff(want, labels); diff != "" {
			t.Errorf("Namespace(%s) labels (-want +got):\n%s", ns, diff)
		}
		got := summarize(snap.Requirements(ns, labels, imageref.ParseRepo("registry.example.com/team/app")))
		if len(got) != 1 || got[0].Policy != "ClusterImagePolicy prod" {
			t.Errorf("Requirements in %s = %+v, want ClusterImagePolicy prod", ns, got)
		}
	}
	if _, err := snap.Namespace("unknown"); err == nil {
		t.Error("Namespace(unknown) = nil error, want not found")
	}
	if n := len(s.InvalidPolicies()); n != 1 {
		t.Errorf("%d invalid policies, want 1 (broken)", n)
	}
	for _, a := range dyn.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("read-only source sent %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetSubresource())
		}
	}
	for _, a := range kube.Actions() {
		if v := a.GetVerb(); v != "list" && v != "watch" && v != "get" {
			t.Errorf("read-only source sent %s %s", v, a.GetResource().Resource)
		}
	}
}

// TestClusterSourceChangeNotHeldByRereads: once a Secret's cached failure
// has expired, it is re-read in the background; a policy change meanwhile
// is compiled and served at once, not after the re-reads (here they never
// finish until the test ends).
func TestClusterSourceChangeNotHeldByRereads(t *testing.T) {
	t.Parallel()
	keys := testKeys()
	cipGVR, ipGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", v1alpha1.TrustRootResource: "TrustRootList"},
		imagePolicy(t, "team-a", "broken", secretKeySpec("quay.io/team-a/*", "missing")),
	)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{corev1.LabelMetadataName: "team-a"}}})
	release := make(chan struct{})
	var gets, blocked atomic.Int32
	kube.PrependReactor("get", "secrets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if gets.Add(1) > 1 { // every re-read hangs until the test ends
			blocked.Add(1)
			<-release
		}
		return true, nil, apierrors.NewNotFound(corev1.Resource("secrets"), a.(clienttesting.GetAction).GetName())
	})
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{Resync: 10 * time.Millisecond, SecretFailureTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := startSource(t, s, func() { close(release) })
	waitFor(t, func() bool { return blocked.Load() > 0 }) // a re-read is under way, and stuck

	corp := clusterPolicy(t, "corp", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: v1alpha1.ImagePolicySpec{
		Images:      []v1alpha1.ImageGlob{{Glob: "registry.example.com/**"}},
		Authorities: []v1alpha1.Authority{{Name: "k", Key: &v1alpha1.KeySource{Data: keys["P256"]}}},
	}})
	if _, err := dyn.Resource(cipGVR).Create(ctx, corp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		rs := s.Snapshot().Requirements("team-a", nil, imageref.ParseRepo("registry.example.com/app"))
		return len(rs) == 1 && rs[0].Policy == "ClusterImagePolicy corp"
	})
	rs := s.Snapshot().Requirements("team-a", nil, imageref.ParseRepo("quay.io/team-a/app"))
	if len(rs) != 1 || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "missing") {
		t.Errorf("the broken policy = %+v, want it still invalid from the cached failure", rs)
	}
}

// startSource runs s until the test ends (Run must then return nil) and
// returns once s is ready, with the context s runs under. beforeStop runs
// first when the test ends (e.g. to release a reactor that blocks).
func startSource(t *testing.T, s *ClusterSource, beforeStop ...func()) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		for _, f := range beforeStop {
			f()
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}
