package tufroot_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/tufroot"
	"github.com/signgate/signgate/internal/tuftest"
)

func newRepo(t *testing.T, target string) *tuftest.Repo {
	t.Helper()
	r, err := tuftest.New([]byte(target))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestFetch: the first fetch, a published change, a root key rotation
// (followed from the initial root), an unreachable mirror, a root from
// another repository and a tampered target.
func TestFetch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := newRepo(t, `{"v":1}`)
	f := &tufroot.Fetcher{}
	fetch := func() ([]byte, error) { return f.Fetch(ctx, repo.URL, repo.Root()) }

	if got, err := fetch(); err != nil || !bytes.Equal(got, []byte(`{"v":1}`)) {
		t.Fatalf("first fetch = %q, %v", got, err)
	}
	if err := repo.Publish([]byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch(); err != nil || !bytes.Equal(got, []byte(`{"v":2}`)) {
		t.Fatalf("after publish = %q, %v", got, err)
	}
	if err := repo.RotateRootKeys(); err != nil {
		t.Fatal(err)
	}
	if err := repo.Publish([]byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch(); err != nil || !bytes.Equal(got, []byte(`{"v":3}`)) {
		t.Fatalf("after key rotation = %q, %v", got, err)
	}

	repo.TamperTarget([]byte(`{"v":4}`))
	if got, err := fetch(); err == nil {
		t.Errorf("tampered target accepted: %q", got)
	}
	if err := repo.Publish([]byte(`{"v":5}`)); err != nil {
		t.Fatal(err)
	}

	repo.Stop()
	if _, err := fetch(); err == nil || !strings.Contains(err.Error(), repo.URL) {
		t.Errorf("stopped mirror: %v, want an error naming it", err)
	}
	if err := repo.Start(); err != nil {
		t.Fatal(err)
	}
	other := newRepo(t, `{"other":true}`)
	if got, err := f.Fetch(ctx, repo.URL, other.Root()); err == nil {
		t.Errorf("root of another repository accepted: %q", got)
	}
}

func TestFetchBadInput(t *testing.T) {
	t.Parallel()
	f := &tufroot.Fetcher{}
	for _, tc := range []struct{ mirror, root, want string }{
		{"ftp://127.0.0.1/", "{}", "want an http or https URL"},
		{"127.0.0.1:1", "{}", "want an http or https URL"},
		{"http://127.0.0.1:1", "", "no initial root.json"},
		{"http://127.0.0.1:1", "not json", "TUF repository http://127.0.0.1:1"},
	} {
		if _, err := f.Fetch(context.Background(), tc.mirror, []byte(tc.root)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%q, %q) = %v, want %q", tc.mirror, tc.root, err, tc.want)
		}
	}
}
