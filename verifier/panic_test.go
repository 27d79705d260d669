package verifier_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// Annotations cosign's sigLayer parses as PEM certificates.
const (
	certAnnotation  = "dev.sigstore.cosign/certificate"
	chainAnnotation = "dev.sigstore.cosign/chain"
)

// TestHostileCertificateAnnotations: a classic signature layer whose
// certificate or chain annotation is only whitespace makes cosign's
// sigLayer.Cert index an empty slice. A key authority uses no
// certificate, so such a layer must neither crash the process nor make
// the answer anything but definite: it counts as the signature it is.
func TestHostileCertificateAnnotations(t *testing.T) {
	t.Parallel()
	alice, mallory := registrytest.NewSigner(t), registrytest.NewSigner(t)
	blank := " \n\t "
	type signing struct {
		signer      *registrytest.Signer
		annotations map[string]string
	}
	tests := []struct {
		name   string
		signed []signing // in layer order
		want   string
	}{
		{
			name:   "whitespace certificate, untrusted key",
			signed: []signing{{mallory, map[string]string{certAnnotation: blank}}},
			want:   "not verified: no valid signature from a trusted key",
		},
		{
			name: "whitespace certificate before a valid signature",
			signed: []signing{
				{mallory, map[string]string{certAnnotation: blank}},
				{alice, nil},
			},
			want: "verified",
		},
		{
			name:   "whitespace certificate on a valid signature",
			signed: []signing{{alice, map[string]string{certAnnotation: blank}}},
			want:   "verified",
		},
		{
			name:   "whitespace chain, untrusted key",
			signed: []signing{{mallory, map[string]string{chainAnnotation: blank}}},
			want:   "not verified: no valid signature from a trusted key",
		},
		{
			name: "whitespace certificate and chain before a valid signature",
			signed: []signing{
				{mallory, map[string]string{certAnnotation: blank, chainAnnotation: blank}},
				{alice, nil},
			},
			want: "verified",
		},
		{
			name:   "whitespace certificate and chain on a valid signature",
			signed: []signing{{alice, map[string]string{certAnnotation: blank, chainAnnotation: blank}}},
			want:   "verified",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := registrytest.New(t)
			d := reg.PushImage(t, "team/app", "v1")
			for _, s := range tc.signed {
				reg.SignAnnotated(t, s.signer, d, s.annotations)
			}
			obs := &countingObserver{events: map[string]int{}}
			v := newVerifier(t, reg, verifier.Options{Observer: obs})
			set := newSet(t, 0, authority("alice", alice))
			for i := range 2 { // the second answer is the cached verdict
				res, err := v.Verify(t.Context(), d, set)
				if got := outcome(res, err); got != tc.want {
					t.Fatalf("call %d: %s, want %s; err %v", i, got, tc.want, err)
				}
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if n := obs.events["cache/verdict/hit"]; n != 1 {
				t.Errorf("verdict cache hits = %d, want 1 (a definite answer is cached)", n)
			}
			if n := obs.events["panic/verify"]; n != 0 {
				t.Errorf("recovered panics = %d, want 0: the certificate annotations are not parsed", n)
			}
		})
	}
}

// panicTransport panics on every manifest request while armed, standing
// in for a library that panics on what a registry returned. Pings go
// through, so the registry session is set up before the panic.
type panicTransport struct {
	base  http.RoundTripper
	armed atomic.Bool
}

func (p *panicTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.armed.Load() && strings.Contains(req.URL.Path, "/manifests/") {
		var s []string
		_ = s[len(req.URL.Path)] // index out of range, as in cosign's sigLayer.Cert
	}
	return p.base.RoundTrip(req)
}

// TestPanicInFlight: a panic in the shared work of Verify or Resolve is
// recovered on the flight's goroutine (singleflight would re-panic it
// where nothing recovers it, and the process would exit). Every caller
// gets an undecided answer saying that an internal error occurred; it is
// not cached (the next call runs again), and each panic is counted.
func TestPanicInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		op   string
		call func(t *testing.T, v *verifier.Verifier, reg *registrytest.Registry, d name.Digest, set verifier.AuthoritySet) (cached bool, err error)
	}{
		{
			op: "verify",
			call: func(t *testing.T, v *verifier.Verifier, _ *registrytest.Registry, d name.Digest, set verifier.AuthoritySet) (bool, error) {
				res, err := v.Verify(t.Context(), d, set)
				return res.Cached, err
			},
		},
		{
			op: "resolve",
			call: func(t *testing.T, v *verifier.Verifier, reg *registrytest.Registry, d name.Digest, _ verifier.AuthoritySet) (bool, error) {
				ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
				if err != nil {
					t.Fatal(err)
				}
				got, err := v.Resolve(t.Context(), ref)
				if err == nil && got.String() != d.String() {
					t.Errorf("Resolve = %s, want %s", got, d)
				}
				return false, err
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.op, func(t *testing.T) {
			t.Parallel()
			reg, alice, d := signedApp(t)
			set := newSet(t, 0, authority("alice", alice))
			tr := &panicTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
			obs := &countingObserver{events: map[string]int{}}
			v := newVerifier(t, reg, verifier.Options{Transport: tr, Observer: obs})
			// A first call without the fault sets up the registry session
			// (ping); the digest verified here is a different key, so
			// nothing is cached for the calls below.
			other := reg.PushImage(t, "team/app", "")
			reg.Sign(t, alice, other, registrytest.Classic)
			if _, err := v.Verify(t.Context(), other, set); err != nil {
				t.Fatal(err)
			}

			tr.armed.Store(true)
			for i := 1; i <= 2; i++ { // the second call runs again: nothing was cached
				_, err := tc.call(t, v, reg, d, set)
				var u *verifier.UndecidedError
				if !errors.As(err, &u) {
					t.Fatalf("call %d: err = %v (%T), want *UndecidedError", i, err, err)
				}
				if u.Op != tc.op {
					t.Errorf("call %d: Op = %q, want %q", i, u.Op, tc.op)
				}
				if want := "gave an answer signgate could not use (an internal error; please report it)"; u.Reason != want || u.Problem() != want {
					t.Errorf("call %d: Reason %q, Problem %q; want %q", i, u.Reason, u.Problem(), want)
				}
				for _, want := range []string{"an internal error occurred while reading the registry's data", "please report it"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("call %d: err = %q, want it to contain %q", i, err, want)
					}
				}
				obs.mu.Lock()
				n := obs.events["panic/"+tc.op]
				obs.mu.Unlock()
				if n != i {
					t.Errorf("call %d: %d panics counted, want %d", i, n, i)
				}
			}

			tr.armed.Store(false)
			cached, err := tc.call(t, v, reg, d, set)
			if err != nil || cached {
				t.Fatalf("without the fault: cached %v, err %v; want a fresh answer", cached, err)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			want := map[string]int{"panic/" + tc.op: 2, "verification/verified": 1}
			if tc.op == "verify" {
				want["verification/verified"] = 2 // the setup call and the last one; panicked runs are not counted
			}
			got := map[string]int{}
			for k, n := range obs.events {
				if strings.HasPrefix(k, "panic/") || strings.HasPrefix(k, "verification/") {
					got[k] = n
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("panic and verification events (-want +got):\n%s", diff)
			}
		})
	}
}
