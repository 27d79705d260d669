package verifier_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// TestCached: Cached answers exactly what Verify answers when no registry
// I/O is needed, and reports a miss otherwise, without any request.
func TestCached(t *testing.T) {
	t.Parallel()
	alice, bob := registrytest.NewSigner(t), registrytest.NewSigner(t)
	reg := registrytest.New(t)
	signed := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, alice, signed, registrytest.Classic)
	unsigned := reg.PushImage(t, "team/app", "v2")
	flaky := reg.PushImage(t, "team/app", "v3")
	obs := &countingObserver{events: map[string]int{}}
	v := newVerifier(t, reg, verifier.Options{Observer: obs})
	set := newSet(t, 0, authority("alice", alice), authority("also-alice", alice), authority("bob", bob))

	noRequest := func(t *testing.T) {
		t.Helper()
		if n := reg.Requests(); n != 0 {
			t.Errorf("Cached made %d registry requests", n)
		}
	}

	// Misses: nothing known yet, no request made, nothing counted.
	reg.ResetRequests()
	if res, ok, err := v.Cached(signed, set); ok || err != nil || res.Digest.String() != "" {
		t.Errorf("Cached before any Verify = %+v, %v, %v; want a miss", res, ok, err)
	}
	if res, ok, err := v.Cached(unsigned, set); ok || err != nil || res.Digest.String() != "" {
		t.Errorf("Cached before any Verify = %+v, %v, %v; want a miss", res, ok, err)
	}
	noRequest(t)
	if diff := cmp.Diff(map[string]int{}, obs.events); diff != "" {
		t.Errorf("a miss of Cached counted events (-want +got):\n%s", diff)
	}

	// Hits: the same answer as Verify, marked cached, own copies.
	wantRes, err := v.Verify(t.Context(), signed, set)
	if err != nil {
		t.Fatal(err)
	}
	_, wantErr := v.Verify(t.Context(), unsigned, set)
	var wantNV *verifier.NotVerifiedError
	if !errors.As(wantErr, &wantNV) {
		t.Fatalf("Verify(unsigned) = %v, want a NotVerifiedError", wantErr)
	}
	reg.ResetRequests()
	hits := obs.events["cache/verdict/hit"]
	res, ok, err := v.Cached(signed, set)
	if !ok || err != nil {
		t.Fatalf("Cached(signed) = %v, %v; want a cached verdict", ok, err)
	}
	if res.Digest != wantRes.Digest || !res.Cached || !slices.Equal(res.Verified, wantRes.Verified) {
		t.Errorf("Cached(signed) = %+v, want Verify's %+v, cached", res, wantRes)
	}
	if diff := cmp.Diff([]string{"alice", "also-alice"}, res.Verified); diff != "" {
		t.Errorf("verified names (-want +got):\n%s", diff)
	}
	res.Verified[0] = "mallory" // a caller's copy
	again, _, _ := v.Cached(signed, set)
	if again.Verified[0] != "alice" {
		t.Errorf("a result's Verified is shared between calls: %v", again.Verified)
	}
	_, ok, err = v.Cached(unsigned, set)
	var nv *verifier.NotVerifiedError
	if !ok || !errors.As(err, &nv) {
		t.Fatalf("Cached(unsigned) = %v, %v; want the cached NotVerifiedError", ok, err)
	}
	if diff := cmp.Diff(wantNV.Error(), nv.Error()); diff != "" {
		t.Errorf("Cached(unsigned) differs from Verify (-want +got):\n%s", diff)
	}
	if nv == wantNV {
		t.Error("Cached returned the error value Verify returned: errors must be copies")
	}
	nv.Reason = "changed by a caller"
	if _, _, err := v.Cached(unsigned, set); errors.As(err, &nv) && nv.Reason == "changed by a caller" {
		t.Error("a caller's change to a cached error reached the cache")
	}
	noRequest(t)
	if got := obs.events["cache/verdict/hit"] - hits; got != 4 {
		t.Errorf("4 cached answers counted %d verdict cache hits", got)
	}

	// Undecided answers are never cached.
	reg.SetFault(registrytest.FailN(http.StatusServiceUnavailable, -1))
	if _, err := v.Verify(t.Context(), flaky, set); !verifier.IsUndecided(err) {
		t.Fatalf("Verify with the registry down = %v, want undecided", err)
	}
	reg.SetFault(nil)
	reg.ResetRequests()
	if _, ok, err := v.Cached(flaky, set); ok || err != nil {
		t.Errorf("Cached after an undecided Verify = %v, %v; want a miss", ok, err)
	}
	noRequest(t)

	// A set not built by NewAuthoritySet is rejected without I/O, by both.
	var bad verifier.AuthoritySet
	_, ok, err = v.Cached(signed, bad)
	if !ok || !errors.As(err, &nv) || nv.Reason != "invalid authority set: no authorities (build sets with NewAuthoritySet)" {
		t.Errorf("Cached with an invalid set = %v, %v; want the invalid-set NotVerifiedError", ok, err)
	}
	if _, verr := v.Verify(t.Context(), signed, bad); verr == nil || verr.Error() != err.Error() {
		t.Errorf("Verify with an invalid set = %v, want %v", verr, err)
	}
	noRequest(t)
}

// TestVerifySharedVerdicts: verdicts are shared by content: the same keys
// under other names share verdicts and get their own names, and another
// threshold over the same keys is its own verdict.
func TestVerifySharedVerdicts(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	bob := registrytest.NewSigner(t)
	v := newVerifier(t, reg, verifier.Options{})
	tests := []struct {
		name         string
		set          verifier.AuthoritySet
		want         string
		wantVerified []string
	}{
		{"valid", newSet(t, 0, authority("alice", alice), authority("bob", bob)), "verified", []string{"alice"}},
		{"same keys, other names", newSet(t, 0, authority("ci", alice), authority("release", bob)), "verified", []string{"ci"}},
		{"same keys, threshold 2", newSet(t, 2, authority("alice", alice), authority("bob", bob)), "not verified: only 1 of the 2 required authorities verified", nil},
		{"valid again", newSet(t, 0, authority("alice", alice), authority("bob", bob)), "verified", []string{"alice"}},
	}
	for _, tt := range tests { // in order: later rows follow earlier ones' memos
		for range 2 {
			res, err := v.Verify(t.Context(), d, tt.set)
			if got := outcome(res, err); got != tt.want {
				t.Errorf("%s: Verify = %q, want %q", tt.name, got, tt.want)
			}
			if diff := cmp.Diff(tt.wantVerified, res.Verified); diff != "" {
				t.Errorf("%s: verified (-want +got):\n%s", tt.name, diff)
			}
		}
	}
}

// TestResolveCached: digests answer at once, tags only once Resolve has
// cached them, with the same digest and without any request.
func TestResolveCached(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	obs := &countingObserver{events: map[string]int{}}
	v := newVerifier(t, reg, verifier.Options{Observer: obs})
	tag, err := verifier.ParseReference(reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	reg.ResetRequests()
	if got, ok := v.ResolveCached(d); !ok || got.String() != d.String() {
		t.Errorf("ResolveCached(digest) = %v, %v; want %v", got, ok, d)
	}
	if got, ok := v.ResolveCached(tag); ok {
		t.Errorf("ResolveCached(tag) before Resolve = %v, want a miss", got)
	}
	if n := reg.Requests(); n != 0 {
		t.Errorf("ResolveCached made %d registry requests", n)
	}
	want, err := v.Resolve(t.Context(), tag)
	if err != nil {
		t.Fatal(err)
	}
	reg.ResetRequests()
	hits := obs.events["cache/tag/hit"]
	if got, ok := v.ResolveCached(tag); !ok || got.String() != want.String() {
		t.Errorf("ResolveCached(tag) after Resolve = %v, %v; want %v", got, ok, want)
	}
	if n := reg.Requests(); n != 0 {
		t.Errorf("ResolveCached made %d registry requests", n)
	}
	if got := obs.events["cache/tag/hit"] - hits; got != 1 {
		t.Errorf("a cached resolution counted %d tag cache hits, want 1", got)
	}
}
