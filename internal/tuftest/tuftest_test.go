package tuftest

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/tuf"
)

func newRepo(t *testing.T, content string) *Repo {
	t.Helper()
	r, err := New([]byte(content))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// newClient makes a sigstore-go TUF client the way the product does. The
// cache path is a fresh directory because go-tuf still READS metadata from
// it with DisableLocalCache (it only stops writing).
func newClient(t *testing.T, root []byte, url string) (*tuf.Client, error) {
	t.Helper()
	opts := tuf.DefaultOptions().
		WithRoot(root).
		WithRepositoryBaseURL(url).
		WithCachePath(t.TempDir()).
		WithDisableLocalCache()
	return tuf.New(opts)
}

// fetch gets TargetName with a new client starting from root.
func fetch(t *testing.T, root []byte, url string) ([]byte, error) {
	t.Helper()
	c, err := newClient(t, root, url)
	if err != nil {
		return nil, err
	}
	return c.GetTarget(TargetName)
}

func mustFetch(t *testing.T, r *Repo, want string) {
	t.Helper()
	got, err := fetch(t, r.Root(), r.URL)
	if err != nil {
		t.Fatalf("fetching %s: %v", TargetName, err)
	}
	if string(got) != want {
		t.Fatalf("%s = %q, want %q", TargetName, got, want)
	}
}

func TestFetch(t *testing.T) {
	r := newRepo(t, `{"v":1}`)
	if !strings.HasPrefix(r.URL, "http://127.0.0.1:") {
		t.Fatalf("URL = %q, want http://127.0.0.1:PORT", r.URL)
	}
	mustFetch(t, r, `{"v":1}`)

	// The exact requests go-tuf makes with consistent snapshots: the next
	// root version until a 404, then timestamp, snapshot, targets and the
	// hash-prefixed target. Never /root.json.
	r.mu.Lock()
	paths := append([]string(nil), r.paths...)
	target := "/" + r.targetPath
	r.mu.Unlock()
	want := []string{"/2.root.json", "/timestamp.json", "/1.snapshot.json", "/1.targets.json", target}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("requested paths = %q, want %q", paths, want)
	}
	if got := r.Requests(); got != len(want) {
		t.Errorf("Requests() = %d, want %d", got, len(want))
	}
}

func TestPublish(t *testing.T) {
	r := newRepo(t, `{"v":1}`)
	mustFetch(t, r, `{"v":1}`)

	if err := r.Publish([]byte(`{"v":2}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	mustFetch(t, r, `{"v":2}`)

	// An existing client sees the new content after Refresh.
	c, err := newClient(t, r.Root(), r.URL)
	if err != nil {
		t.Fatalf("tuf.New: %v", err)
	}
	if err := r.Publish([]byte(`{"v":3}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := c.Refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	got, err := c.GetTarget(TargetName)
	if err != nil || string(got) != `{"v":3}` {
		t.Fatalf("GetTarget after Refresh = %q, %v; want {\"v\":3}", got, err)
	}
}

func TestRotateRootKeys(t *testing.T) {
	r := newRepo(t, `{"v":1}`)
	root1 := append([]byte(nil), r.Root()...)

	if err := r.RotateRootKeys(); err != nil {
		t.Fatalf("RotateRootKeys: %v", err)
	}
	if !bytes.Equal(r.Root(), root1) {
		t.Fatal("Root() changed after RotateRootKeys; want root v1")
	}
	// Timestamp, snapshot and targets are now signed only by keys of root
	// v2, so this works only if the client walked root v1 -> v2.
	mustFetch(t, r, `{"v":1}`)

	if err := r.Publish([]byte(`{"v":2}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := r.RotateRootKeys(); err != nil {
		t.Fatalf("second RotateRootKeys: %v", err)
	}
	mustFetch(t, r, `{"v":2}`)
	r.mu.Lock()
	var roots []string
	for _, p := range r.paths {
		if strings.HasSuffix(p, ".root.json") {
			roots = append(roots, p)
		}
	}
	r.mu.Unlock()
	// The last client walked 2, 3 and stopped at the 404 of 4.
	if got := strings.Join(roots[len(roots)-3:], " "); got != "/2.root.json /3.root.json /4.root.json" {
		t.Errorf("last root requests = %q, want /2.root.json /3.root.json /4.root.json", got)
	}
}

func TestStopStart(t *testing.T) {
	r := newRepo(t, `{"v":1}`)
	c, err := newClient(t, r.Root(), r.URL)
	if err != nil {
		t.Fatalf("tuf.New: %v", err)
	}

	r.Stop()
	_, err = fetch(t, r.Root(), r.URL)
	if err == nil {
		t.Fatal("tuf.New succeeded with the repository stopped")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("tuf.New error = %v, want connection refused", err)
	}
	if err := c.Refresh(); err == nil {
		t.Error("Refresh succeeded with the repository stopped")
	}
	r.Stop() // no-op

	if err := r.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	mustFetch(t, r, `{"v":1}`)
	if err := c.Refresh(); err != nil {
		t.Fatalf("Refresh after Start: %v", err)
	}
}

func TestWrongRoot(t *testing.T) {
	r := newRepo(t, `{"v":1}`)
	other := newRepo(t, `{"v":"other"}`)

	got, err := fetch(t, other.Root(), r.URL)
	if err == nil {
		t.Fatalf("client with another repository's root got %q; want an error", got)
	}
	// Root v2 is a 404, so the client keeps the wrong root v1, whose keys
	// signed nothing here.
	if !strings.Contains(err.Error(), "not enough signatures") {
		t.Errorf("error = %v, want a signature failure", err)
	}
}

func TestTamperTarget(t *testing.T) {
	r := newRepo(t, `{"v":1}`)

	// Same length, different bytes: the hash check must catch it.
	r.TamperTarget([]byte(`{"v":2}`))
	got, err := fetch(t, r.Root(), r.URL)
	if err == nil {
		t.Fatalf("tampered target accepted: %q", got)
	}
	if !strings.Contains(err.Error(), "hash") {
		t.Errorf("error = %v, want a hash mismatch", err)
	}

	// Publishing serves correct, signed bytes again.
	if err := r.Publish([]byte(`{"v":3}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	mustFetch(t, r, `{"v":3}`)
}

func TestRotateAfterTamperKeepsSignedContent(t *testing.T) {
	r := newRepo(t, `{"v":1}`)
	r.TamperTarget([]byte("evil"))
	if err := r.RotateRootKeys(); err != nil {
		t.Fatalf("RotateRootKeys: %v", err)
	}
	mustFetch(t, r, `{"v":1}`)
}
