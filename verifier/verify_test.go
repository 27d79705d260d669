package verifier_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// hangGuard bounds what the tests wait for. It only turns a hang into a
// failure: no test asserts how long anything took, so a loaded machine
// changes no outcome.
const hangGuard = 2 * time.Minute

// waitFor polls cond until it holds; it fails t after hangGuard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(hangGuard); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s for %s", hangGuard, what)
		}
	}
}

// newVerifier returns a Verifier allowed to reach reg over plain HTTP.
// Unless the test sets one, its Timeout is hangGuard rather than the 5 s
// default, so that a decision the test asserts never turns undecided
// because the machine is busy.
func newVerifier(t testing.TB, reg *registrytest.Registry, opts verifier.Options) *verifier.Verifier {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = hangGuard
	}
	opts.InsecureRegistries = append(opts.InsecureRegistries, reg.Host)
	opts.AllowedHosts = append(opts.AllowedHosts, reg.Host)
	v, err := verifier.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signedApp is the common fixture: a registry holding team/app:v1, signed
// by alice in the classic layout.
func signedApp(t testing.TB) (*registrytest.Registry, *registrytest.Signer, name.Digest) {
	t.Helper()
	alice := registrytest.NewSigner(t)
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1")
	reg.Sign(t, alice, d, registrytest.Classic)
	return reg, alice, d
}

// newSet is verifier.NewAuthoritySet for tests.
func newSet(t testing.TB, threshold int, as ...verifier.Authority) verifier.AuthoritySet {
	t.Helper()
	set, err := verifier.NewAuthoritySet(threshold, as...)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func authority(name string, s *registrytest.Signer) verifier.Authority {
	return verifier.Authority{Name: name, Key: s.Public}
}

// outcome summarises a Verify answer for comparison.
func outcome(res verifier.Result, err error) string {
	var nv *verifier.NotVerifiedError
	switch {
	case err == nil:
		return "verified"
	case errors.As(err, &nv):
		return "not verified: " + nv.Reason
	case verifier.IsUndecided(err):
		return "undecided"
	default:
		return "error: " + err.Error()
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	alice, bob, carol := registrytest.NewSigner(t), registrytest.NewSigner(t), registrytest.NewSigner(t)
	layouts := []registrytest.Layout{registrytest.Classic, registrytest.Bundle}
	type signing struct {
		signer *registrytest.Signer
		other  bool // payload names another digest
	}
	tests := []struct {
		name         string
		noReferrers  bool
		signed       []signing
		set          verifier.AuthoritySet
		want         string
		wantVerified []string
	}{
		{
			name:         "valid signature",
			signed:       []signing{{signer: alice}},
			set:          newSet(t, 0, authority("alice", alice)),
			want:         "verified",
			wantVerified: []string{"alice"},
		},
		{
			name:         "valid signature, registry without referrers API",
			noReferrers:  true,
			signed:       []signing{{signer: alice}},
			set:          newSet(t, 0, authority("alice", alice)),
			want:         "verified",
			wantVerified: []string{"alice"},
		},
		{
			name:   "wrong key",
			signed: []signing{{signer: alice}},
			set:    newSet(t, 0, authority("bob", bob)),
			want:   "not verified: no valid signature from a trusted key",
		},
		{
			name: "no signature",
			set:  newSet(t, 0, authority("alice", alice)),
			want: "not verified: no signatures found",
		},
		{
			name:   "payload names another digest",
			signed: []signing{{signer: alice, other: true}},
			set:    newSet(t, 0, authority("alice", alice)),
			want:   "not verified: no valid signature from a trusted key",
		},
		{
			name:         "threshold 2 of 3, two signed",
			signed:       []signing{{signer: alice}, {signer: carol}},
			set:          newSet(t, 2, authority("alice", alice), authority("bob", bob), authority("carol", carol)),
			want:         "verified",
			wantVerified: []string{"alice", "carol"},
		},
		{
			name:   "threshold 2 of 3, one signed",
			signed: []signing{{signer: bob}},
			set:    newSet(t, 2, authority("alice", alice), authority("bob", bob), authority("carol", carol)),
			want:   "not verified: only 1 of the 2 required authorities verified",
		},
		{
			name:   "threshold 2 counts distinct keys, not names",
			signed: []signing{{signer: alice}, {signer: alice}},
			set:    newSet(t, 2, authority("alice", alice), authority("alice-again", alice), authority("bob", bob)),
			want:   "not verified: only 1 of the 2 required authorities verified",
		},
		{
			name:   "threshold 2, one valid and one over another digest",
			signed: []signing{{signer: alice}, {signer: bob, other: true}},
			set:    newSet(t, 2, authority("alice", alice), authority("bob", bob)),
			want:   "not verified: only 1 of the 2 required authorities verified",
		},
	}
	for _, layout := range layouts {
		for _, tc := range tests {
			t.Run(layout.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				var opts []registrytest.Option
				if tc.noReferrers {
					opts = append(opts, registrytest.WithoutReferrersAPI())
				}
				reg := registrytest.New(t, opts...)
				d := reg.PushImage(t, "team/app", "v1")
				other := reg.PushImage(t, "team/app", "")
				for _, s := range tc.signed {
					claimed := d
					if s.other {
						claimed = other
					}
					reg.SignClaim(t, s.signer, d, claimed, layout)
				}
				v := newVerifier(t, reg, verifier.Options{})
				res, err := v.Verify(t.Context(), d, tc.set)
				if diff := cmp.Diff(tc.want, outcome(res, err)); diff != "" {
					t.Fatalf("outcome (-want +got):\n%s\nerr: %v", diff, err)
				}
				if diff := cmp.Diff(tc.wantVerified, res.Verified); diff != "" {
					t.Errorf("verified authorities (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestVerifyMixedLayouts: one authority signs classic, another a bundle;
// together they meet a threshold of 2.
func TestVerifyMixedLayouts(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	bob := registrytest.NewSigner(t)
	reg.Sign(t, bob, d, registrytest.Bundle)
	v := newVerifier(t, reg, verifier.Options{})
	res, err := v.Verify(t.Context(), d, newSet(t, 2, authority("alice", alice), authority("bob", bob)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice", "bob"}, res.Verified); diff != "" {
		t.Errorf("verified (-want +got):\n%s", diff)
	}
}

func TestVerifyIndexAndPlatformManifest(t *testing.T) {
	t.Parallel()
	alice := registrytest.NewSigner(t)
	set := newSet(t, 0, authority("alice", alice))
	reg := registrytest.New(t)
	idx, children := reg.PushIndex(t, "team/multi", "v1", 2)
	reg.Sign(t, alice, idx, registrytest.Classic)
	v := newVerifier(t, reg, verifier.Options{})

	ref, err := verifier.ParseReference(reg.Host + "/team/multi:v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Resolve(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != idx.String() {
		t.Fatalf("Resolve = %s, want the index digest %s", got, idx)
	}
	tests := []struct {
		name string
		d    name.Digest
		want string
	}{
		{"signed index", idx, "verified"},
		{"platform child of a signed index", children[0], "not verified: no signatures found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := v.Verify(t.Context(), tc.d, set)
			if diff := cmp.Diff(tc.want, outcome(res, err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyTransientNotCached(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusInternalServerError} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			alice := registrytest.NewSigner(t)
			set := newSet(t, 0, authority("alice", alice))
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			reg.Sign(t, alice, d, registrytest.Classic)
			v := newVerifier(t, reg, verifier.Options{})

			reg.SetFault(registrytest.FailN(code, -1))
			if got := outcome(v.Verify(t.Context(), d, set)); got != "undecided" {
				t.Fatalf("during outage: %s, want undecided", got)
			}
			reg.SetFault(nil)
			res, err := v.Verify(t.Context(), d, set)
			if got := outcome(res, err); got != "verified" || res.Cached {
				t.Fatalf("after recovery: %s (cached %v), want a fresh verified answer; err %v", got, res.Cached, err)
			}
		})
	}
}

// TestVerifySlowRegistryUndecidedInTime: a registry that never answers
// ends in undecided when the first of Options.Timeout and the caller's
// deadline passes. The other bound is hangGuard: reaching it means the
// short one was not applied.
func TestVerifySlowRegistryUndecidedInTime(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	set := newSet(t, 0, authority("alice", alice))
	reg.SetFault(registrytest.Stall())

	tests := []struct {
		name     string
		timeout  time.Duration // Options.Timeout
		deadline time.Duration // caller's
	}{
		{"options timeout", 200 * time.Millisecond, hangGuard},
		{"caller deadline", hangGuard, 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t, reg, verifier.Options{Timeout: tc.timeout})
			ctx, cancel := context.WithTimeout(t.Context(), tc.deadline)
			defer cancel()
			start := time.Now()
			_, err := v.Verify(ctx, d, set)
			if !verifier.IsUndecided(err) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want undecided: deadline exceeded", err)
			}
			if el := time.Since(start); el >= hangGuard {
				t.Fatalf("undecided after %s: the 200ms bound was not applied", el)
			}
		})
	}
}

func TestVerifyConcurrentShareOneVerification(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	set := newSet(t, 0, authority("alice", alice))
	v := newVerifier(t, reg, verifier.Options{})

	// Warm the connection and token, so the count is the verification only.
	if _, err := v.Verify(t.Context(), reg.PushImage(t, "team/app", ""), set); err == nil {
		t.Fatal("unsigned image verified")
	}
	reg.ResetRequests()
	// Hold requests until every caller has joined the one verification.
	hold := registrytest.NewHold(nil)
	t.Cleanup(hold.Release)
	reg.SetFault(hold.Fault)
	const callers = 100
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), d, set)
			errs <- err
		})
	}
	waitFor(t, "every caller to join the verification", func() bool {
		return verifier.FlightWaiters(v, d, set) == callers
	})
	hold.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One verification: the .sig manifest and its one payload blob.
	if got := reg.Requests(); got != 2 {
		t.Errorf("registry requests = %d, want 2 (one verification); log: %v", got, reg.RequestLog())
	}

	reg.SetFault(nil)
	reg.ResetRequests()
	res, err := v.Verify(t.Context(), d, set)
	if err != nil || !res.Cached {
		t.Fatalf("second call: cached=%v err=%v, want cached", res.Cached, err)
	}
	if got := reg.Requests(); got != 0 {
		t.Errorf("second call made %d registry requests, want 0: %v", got, reg.RequestLog())
	}
}

// TestVerifyCallerLeavingDoesNotFailOthers: the shared verification
// continues when the caller that started it gives up.
func TestVerifyCallerLeavingDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	set := newSet(t, 0, authority("alice", alice))
	hold := registrytest.NewHold(nil)
	t.Cleanup(hold.Release)
	reg.SetFault(hold.Fault)
	reg.ResetRequests()
	v := newVerifier(t, reg, verifier.Options{})

	impatient, cancel := context.WithCancel(t.Context())
	defer cancel()
	var impatientErr, patientErr error
	impatientDone, patientDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(impatientDone); _, impatientErr = v.Verify(impatient, d, set) }()
	waitFor(t, "the impatient caller to start the verification", func() bool { return reg.Requests() > 0 })
	go func() { defer close(patientDone); _, patientErr = v.Verify(t.Context(), d, set) }()
	waitFor(t, "the patient caller to join", func() bool { return verifier.FlightWaiters(v, d, set) == 2 })
	cancel()
	<-impatientDone
	hold.Release()
	<-patientDone
	if !verifier.IsUndecided(impatientErr) {
		t.Errorf("impatient caller: %v, want undecided", impatientErr)
	}
	if patientErr != nil {
		t.Errorf("patient caller: %v, want verified", patientErr)
	}
	// The patient caller got the run the impatient one started: one read
	// of the .sig manifest.
	if got := count(reg, "GET /v2/team/app/manifests/"); got != 1 {
		t.Errorf("%d manifest reads, want 1 (one verification); log: %v", got, reg.RequestLog())
	}
}

func TestVerifyCacheKeyFollowsAuthorities(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	bob := registrytest.NewSigner(t)
	v := newVerifier(t, reg, verifier.Options{})

	aliceSet := newSet(t, 0, authority("alice", alice))
	if _, err := v.Verify(t.Context(), d, aliceSet); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		set          verifier.AuthoritySet
		wantCached   bool
		want         string
		wantVerified []string
	}{
		{"same key, other name (another namespace)", newSet(t, 0, authority("ci", alice)), true, "verified", []string{"ci"}},
		{"other key", newSet(t, 0, authority("alice", bob)), false, "not verified: no valid signature from a trusted key", nil},
		{"key added", newSet(t, 0, authority("alice", alice), authority("bob", bob)), false, "verified", []string{"alice"}},
		{"key added, cached", newSet(t, 0, authority("b", bob), authority("a", alice)), true, "verified", []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg.ResetRequests()
			res, err := v.Verify(t.Context(), d, tc.set)
			if got := outcome(res, err); got != tc.want {
				t.Fatalf("outcome %q, want %q", got, tc.want)
			}
			if diff := cmp.Diff(tc.wantVerified, res.Verified); diff != "" {
				t.Errorf("verified (-want +got):\n%s", diff)
			}
			if (reg.Requests() == 0) != tc.wantCached {
				t.Errorf("served from cache = %v, want %v (requests %v)", reg.Requests() == 0, tc.wantCached, reg.RequestLog())
			}
		})
	}
}

// TestVerifyLayoutHint: once a repository's signatures were found as
// bundles, the next cold verification there reads referrers first and
// skips the classic .sig lookup; a classic signature still verifies.
func TestVerifyLayoutHint(t *testing.T) {
	t.Parallel()
	alice := registrytest.NewSigner(t)
	set := newSet(t, 0, authority("alice", alice))
	reg := registrytest.New(t)
	first, second, classic := reg.PushImage(t, "team/app", "a"), reg.PushImage(t, "team/app", "b"), reg.PushImage(t, "team/app", "c")
	reg.Sign(t, alice, first, registrytest.Bundle)
	reg.Sign(t, alice, second, registrytest.Bundle)
	reg.Sign(t, alice, classic, registrytest.Classic)
	v := newVerifier(t, reg, verifier.Options{CacheSize: -1})
	tests := []struct {
		name       string
		d          name.Digest
		wantSigGET int
	}{
		{"first bundle: classic tried first", first, 1},
		{"second bundle: referrers first", second, 0},
		{"classic after bundles: still verified", classic, 1},
	}
	for _, tc := range tests {
		reg.ResetRequests()
		if _, err := v.Verify(t.Context(), tc.d, set); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n := 0
		for _, l := range reg.RequestLog() {
			if strings.HasSuffix(l, ".sig") {
				n++
			}
		}
		if n != tc.wantSigGET {
			t.Errorf("%s: %d .sig requests, want %d: %v", tc.name, n, tc.wantSigGET, reg.RequestLog())
		}
	}
}
