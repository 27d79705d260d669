package policy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/policy/v1alpha1"
)

// fakeTUF is a FetchTUF whose answer the test sets; it records what it
// was asked.
type fakeTUF struct {
	mu    sync.Mutex
	data  []byte
	err   error
	calls int
	asked []string // mirror + " " + root
}

func (f *fakeTUF) set(data []byte, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data, f.err = data, err
}

func (f *fakeTUF) fetch(_ context.Context, mirror string, root []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.asked = append(f.asked, mirror+" "+string(root))
	return f.data, f.err
}

func (f *fakeTUF) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// TestClusterSourceTUF: a keyless policy on a TUF TrustRoot is invalid
// while its repository was never read, naming the mirror and the error;
// valid once a fetch succeeds, with the fetched content's digest (which
// the verdict cache's fingerprint covers); follows a refresh that changes
// the content; and keeps the last good trusted root when a refresh fails,
// saying so in TrustRootStatus.
func TestClusterSourceTUF(t *testing.T) {
	t.Parallel()
	a := trustedRootJSON(t)
	b := append(bytes.Clone(a), ' ') // other bytes, the same trust material
	const mirror = "http://tuf.example"
	cipGVR, ipGVR, trGVR := v1alpha1.ClusterImagePolicyResource, v1alpha1.ImagePolicyResource, v1alpha1.TrustRootResource
	spec := v1alpha1.ImagePolicySpec{
		Images: []v1alpha1.ImageGlob{{Glob: "registry.example.com/**"}},
		Authorities: []v1alpha1.Authority{{Name: "release", Keyless: &v1alpha1.KeylessAuthority{
			TrustRoot:  "corp",
			Identities: []v1alpha1.KeylessIdentity{{Issuer: "https://token.actions.githubusercontent.com", Subject: "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"}},
		}}},
	}
	tr := toUnstructured(t, &v1alpha1.TrustRoot{ObjectMeta: metav1.ObjectMeta{Name: "corp"}, Spec: v1alpha1.TrustRootSpec{
		TUF: &v1alpha1.TUFSource{
			Mirror:          mirror,
			Root:            v1alpha1.TrustedRootSource{ConfigMapRef: &v1alpha1.ConfigMapKeyRef{Name: "tuf", Key: "root.json"}},
			RefreshInterval: &metav1.Duration{Duration: time.Second},
		},
	}}, KindTrustRoot)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cipGVR: "ClusterImagePolicyList", ipGVR: "ImagePolicyList", trGVR: "TrustRootList"},
		clusterPolicy(t, "release", v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: spec}), tr,
	)
	statusSubresource(dyn)
	kube := kubefake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "signgate-system", Name: "tuf"}, Data: map[string]string{"root.json": `{"initial":"root"}`}})
	tuf := &fakeTUF{}
	tuf.set(nil, errors.New("connection refused"))
	s, err := NewClusterSource(dyn, kube, "signgate-system", ClusterOptions{Resync: time.Hour, FetchTUF: tuf.fetch})
	if err != nil {
		t.Fatal(err)
	}
	startSource(t, s)
	repo := imageref.ParseRepo("registry.example.com/acme/app")
	rs := s.Snapshot().Requirements("default", nil, repo)
	if len(rs) != 1 || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), `TrustRoot "corp": not fetched from `+mirror+`: connection refused`) {
		t.Fatalf("never fetched: %+v, want invalid naming the mirror and the error", summarize(rs))
	}
	if st := s.TrustRootStatus(); len(st) != 1 || st[0].Name != "corp" || st[0].Mirror != mirror || !st[0].Fetched.IsZero() || st[0].Err == nil {
		t.Errorf("status = %+v, want corp never fetched, failing", st)
	}
	digest := func() string {
		ks := keylessOf(s.Snapshot().Requirements("default", nil, repo))
		if len(ks) != 1 {
			return ""
		}
		return ks[0].TrustRoot.Digest
	}

	// The retry comes within the refresh interval (1s), not at Resync.
	tuf.set(a, nil)
	waitFor(t, func() bool { return digest() == hexSHA256(a) })
	first := s.TrustRootStatus()[0]
	if first.Err != nil || first.Fetched.IsZero() {
		t.Errorf("after a fetch: status %+v", first)
	}

	tuf.set(b, nil)
	waitFor(t, func() bool { return digest() == hexSHA256(b) })

	tuf.set(nil, errors.New("mirror down"))
	n := tuf.count()
	waitFor(t, func() bool { return tuf.count() > n+1 }) // two failed refreshes
	if d := digest(); d != hexSHA256(b) {
		t.Errorf("after failed refreshes: digest %s, want the last good (%s)", d, hexSHA256(b))
	}
	st := s.TrustRootStatus()[0]
	if st.Err == nil || !strings.Contains(st.Err.Error(), "mirror down") || st.Fetched.IsZero() {
		t.Errorf("after failed refreshes: status %+v, want the last good kept and the error", st)
	}
	if inv := s.InvalidPolicies(); len(inv) != 0 {
		t.Errorf("InvalidPolicies() = %v", inv)
	}
	tuf.mu.Lock()
	defer tuf.mu.Unlock()
	for _, q := range tuf.asked {
		if q != mirror+` {"initial":"root"}` {
			t.Errorf("fetched %q, want the mirror with the ConfigMap's root", q)
		}
	}
}

// TestTUFSpecInvalid: what is wrong with a spec.tuf is said, and a source
// that fetches no TUF repository (--policy-dir, signgate check) says to
// give the trusted root instead.
func TestTUFSpecInvalid(t *testing.T) {
	t.Parallel()
	tufRoot := func(spec string) string {
		return keylessPolicy + "\n---\napiVersion: signgate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: corp}\nspec:\n" + spec
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"short interval", tufRoot("  tuf: {mirror: 'https://tuf.example', root: {inline: '{}'}, refreshInterval: 500ms}\n"),
			`TrustRoot "corp": tuf.refreshInterval 500ms: want at least 1s`},
		{"not a URL", tufRoot("  tuf: {mirror: 'tuf.example', root: {inline: '{}'}}\n"),
			`TrustRoot "corp": tuf.mirror "tuf.example": want an http or https URL`},
		{"no root", tufRoot("  tuf: {mirror: 'https://tuf.example', root: {}}\n"),
			`TrustRoot "corp": tuf.root: trustedRoot: exactly one of inline, configMapRef or secretRef is required, 0 are set`},
		{"both", tufRoot("  trustedRoot: {inline: '{}'}\n  tuf: {mirror: 'https://tuf.example', root: {inline: '{}'}}\n"),
			`TrustRoot "corp": exactly one of trustedRoot or tuf is required`},
		{"neither", tufRoot("  {}\n"), `TrustRoot "corp": exactly one of trustedRoot or tuf is required`},
		{"not fetched here", tufRoot("  tuf: {mirror: 'https://tuf.example', root: {inline: '{}'}}\n"),
			"only `signgate serve` against a cluster fetches TUF repositories; give this TrustRoot's trusted_root.json instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, results := compileYAML(t, tc.doc)
			if len(results) != 1 || results[0].Err == nil || !strings.Contains(results[0].Err.Error(), tc.want) {
				t.Errorf("results = %+v, want an invalid policy saying %q", results, tc.want)
			}
		})
	}
}

// TestTUFCacheRetry: a failure is retried after min(interval, tufRetry);
// a success after the interval; retain forgets what is no longer named.
func TestTUFCacheRetry(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	f := &fakeTUF{}
	c := newTUFCache(f.fetch, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.now = func() time.Time { return now }
	hourly := tufWant{key: tufKey{Name: "a", Mirror: "https://a"}, root: []byte("{}"), interval: time.Hour}
	f.set(nil, errors.New("down"))
	if !c.fetchAll(context.Background(), []tufWant{hourly}, time.Second) {
		t.Error("first (failed) fetch: want changed (a new entry)")
	}
	if next := c.nextDue([]tufWant{hourly}); !next.Equal(now.Add(tufRetry)) {
		t.Errorf("after a failure, next = %v, want +%s", next.Sub(now), tufRetry)
	}
	f.set([]byte("x"), nil)
	if !c.fetchAll(context.Background(), []tufWant{hourly}, time.Second) {
		t.Error("first success: want changed")
	}
	if next := c.nextDue([]tufWant{hourly}); !next.Equal(now.Add(time.Hour)) {
		t.Errorf("after a success, next = %v, want +1h", next.Sub(now))
	}
	if c.fetchAll(context.Background(), []tufWant{hourly}, time.Second) {
		t.Error("same content again: want unchanged")
	}
	absent, due := c.split([]tufWant{hourly})
	if len(absent)+len(due) != 0 {
		t.Errorf("split before due = %v, %v", absent, due)
	}
	now = now.Add(time.Hour)
	if _, due := c.split([]tufWant{hourly}); len(due) != 1 {
		t.Errorf("split when due = %v", due)
	}
	c.retain(nil)
	if _, err := c.current(hourly.key); err == nil {
		t.Error("retain(nil) kept the entry")
	}
}
