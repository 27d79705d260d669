package verifier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	gstatic "github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// faultEnv is what each TestRegistryFaults case starts from: a registry
// holding team/app:v1, signed by alice in the classic layout.
type faultEnv struct {
	reg   *registrytest.Registry
	d     name.Digest
	alice *registrytest.Signer
	set   verifier.AuthoritySet
}

// writeSigImage replaces d's sha256-<hex>.sig image with one holding sigs.
func writeSigImage(t *testing.T, reg *registrytest.Registry, d name.Digest, sigs ...oci.Signature) {
	t.Helper()
	img, err := cmutate.AppendSignatures(empty.Signatures(), false, sigs...)
	if err != nil {
		t.Fatal(err)
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	if err := remote.Write(tag, img, reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
}

// timedVerify runs Verify and returns its result, duration and error.
func timedVerify(t *testing.T, v *verifier.Verifier, d name.Digest, set verifier.AuthoritySet) (verifier.Result, time.Duration, error) {
	t.Helper()
	start := time.Now()
	res, err := v.Verify(t.Context(), d, set)
	return res, time.Since(start), err
}

// wantFreshVerified checks that, with the fault gone, Verify answers a
// fresh (not cached) "verified": the undecided answer was not kept.
func wantFreshVerified(t *testing.T, e *faultEnv, v *verifier.Verifier) {
	t.Helper()
	e.reg.SetFault(nil)
	res, err := v.Verify(t.Context(), e.d, e.set)
	if got := outcome(res, err); got != "verified" || res.Cached {
		t.Fatalf("after the fault: %s (cached %v), want a fresh verified answer; err %v", got, res.Cached, err)
	}
}

// wantUndecided checks that err is undecided because of the fault, named
// by cause, and not because a time budget ran out: the verifiers here
// have hangGuard to spend, so an answer caused by the fault is a prompt
// one however busy the machine is.
func wantUndecided(t *testing.T, err error, took time.Duration, cause string) {
	t.Helper()
	var u *verifier.UndecidedError
	if !errors.As(err, &u) {
		t.Fatalf("err = %v (%T), want *UndecidedError", err, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), cause) {
		t.Fatalf("undecided after %s: %v; want undecided because of %q, without waiting for a deadline", took, err, cause)
	}
	t.Logf("undecided after %s: %v", took, err)
}

// hostKeychain returns Basic credentials for host only.
type hostKeychain struct{ host string }

func (k hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return authn.FromConfig(authn.AuthConfig{Username: "gate", Password: "s3cret"}), nil
	}
	return authn.Anonymous, nil
}

// rawManifest is a manifest pushed as is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error) { return m, nil }

func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// manyLayers writes a .sig manifest with n layers, each an invalid
// signature over one shared payload blob, and checks that verification is
// a definite, prompt "not verified" that reads at most MaxSignatures of
// them. wantCap: the cap message is expected (cosign's client refuses
// manifests with more than 1000 layers outright).
func manyLayers(t *testing.T, e *faultEnv, n int, wantCap bool) {
	const maxSigs = 5
	payload, err := (&sigpayload.Cosign{Image: e.d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	payloadLayer := gstatic.NewLayer(payload, "application/vnd.dev.cosign.simplesigning.v1+json")
	config := gstatic.NewLayer([]byte("{}"), types.OCIConfigJSON)
	for _, l := range []v1.Layer{payloadLayer, config} {
		if err := remote.WriteLayer(e.d.Repository, l, e.reg.RemoteOptions()...); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer) v1.Descriptor {
		t.Helper()
		d, err := partial.Descriptor(l)
		if err != nil {
			t.Fatal(err)
		}
		return *d
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: desc(config)}
	for i := range n {
		l := desc(payloadLayer)
		l.Annotations = map[string]string{
			"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString([]byte("not a signature " + strconv.Itoa(i))),
		}
		m.Layers = append(m.Layers, l)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tag := e.d.Context().Tag(strings.Replace(e.d.DigestStr(), ":", "-", 1) + ".sig")
	if err := remote.Put(tag, rawManifest(raw), e.reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	e.reg.ResetRequests()
	v := newVerifier(t, e.reg, verifier.Options{MaxSignatures: maxSigs, CacheSize: -1})
	_, took, err := timedVerify(t, v, e.d, e.set)
	var nv *verifier.NotVerifiedError
	if !errors.As(err, &nv) {
		t.Fatalf("err = %v (%T), want *NotVerifiedError", err, err)
	}
	if capMsg := fmt.Sprintf("%d signatures beyond the first %d were ignored", n-maxSigs, maxSigs); wantCap && !strings.Contains(nv.Error(), capMsg) {
		t.Errorf("err = %v, want %q", nv, capMsg)
	}
	// The registry work is what the answer needs, not one request per
	// layer: the .sig manifest, the payload blob every layer shares once,
	// and the look for bundles.
	if got := count(e.reg, "GET /v2/team/app/blobs/"+desc(payloadLayer).Digest.String()); wantCap && got != 1 {
		t.Errorf("the shared payload blob was fetched %d times, want once: %v", got, e.reg.RequestLog())
	}
	if got := e.reg.Requests(); got > 6 {
		t.Errorf("%d registry requests, want at most 6: %v", got, e.reg.RequestLog())
	}
	t.Logf("%d layers: %s, %d requests %v: %s", n, took, e.reg.Requests(), e.reg.RequestLog(), nv.Reason)
}

// TestRegistryFaults: every registry fault ends in a timely, fail-closed,
// correctly typed answer, and nothing undecided is cached.
func TestRegistryFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, e *faultEnv)
	}{
		{
			name: "429 with Retry-After 3600 on manifests",
			run: func(t *testing.T, e *faultEnv) {
				e.reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
					if !strings.Contains(req.URL.Path, "/manifests/") {
						return false
					}
					w.Header().Set("Retry-After", "3600")
					http.Error(w, "slow down", http.StatusTooManyRequests)
					return true
				})
				v := newVerifier(t, e.reg, verifier.Options{})
				_, took, err := timedVerify(t, v, e.d, e.set)
				wantUndecided(t, err, took, "429")
				wantFreshVerified(t, e, v)
			},
		},
		{
			name: "401 and 403: access denied, a definite answer about the gate's credentials",
			run: func(t *testing.T, e *faultEnv) {
				for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
					e.reg.SetFault(registrytest.FailN(code, -1))
					v := newVerifier(t, e.reg, verifier.Options{})
					_, err := v.Verify(t.Context(), e.d, e.set)
					var nv *verifier.NotVerifiedError
					if !errors.As(err, &nv) || !nv.AccessDenied || !strings.Contains(nv.Reason, "denied signgate read access") {
						t.Errorf("HTTP %d: Verify = %v, want a NotVerifiedError with AccessDenied", code, err)
					}
					tag, terr := name.NewTag(e.d.Context().String()+":v1", name.Insecure)
					if terr != nil {
						t.Fatal(terr)
					}
					if _, err := v.Resolve(t.Context(), tag); err == nil || verifier.IsUndecided(err) || !strings.Contains(err.Error(), "denied signgate read access") {
						t.Errorf("HTTP %d: Resolve = %v, want a definite access-denied error", code, err)
					}
				}
				e.reg.SetFault(nil)
			},
		},
		{
			name: "503 burst then recovery",
			run: func(t *testing.T, e *faultEnv) {
				const burst = 4
				e.reg.SetFault(registrytest.FailN(http.StatusServiceUnavailable, burst))
				v := newVerifier(t, e.reg, verifier.Options{})
				_, took, err := timedVerify(t, v, e.d, e.set)
				wantUndecided(t, err, took, "503")
				// Each undecided call consumes at least one failing request,
				// so the burst is over after at most burst calls.
				for i := 0; ; i++ {
					res, err := v.Verify(t.Context(), e.d, e.set)
					if got := outcome(res, err); got == "verified" {
						if res.Cached {
							t.Fatal("verified answer served from cache")
						}
						break
					} else if got != "undecided" || i >= burst {
						t.Fatalf("call %d during recovery: %s (err %v)", i+2, got, err)
					}
				}
			},
		},
		{
			name: "stall longer than Options.Timeout",
			run: func(t *testing.T, e *faultEnv) {
				e.reg.SetFault(registrytest.Stall())
				const timeout = 300 * time.Millisecond
				v := newVerifier(t, e.reg, verifier.Options{Timeout: timeout})
				ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
				defer cancel()
				start := time.Now()
				_, err := v.Verify(ctx, e.d, e.set)
				took := time.Since(start)
				if !verifier.IsUndecided(err) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want undecided: deadline exceeded", err)
				}
				// Both bounds follow from the code, not from scheduling:
				// the registry never answers, so only Options.Timeout ends
				// the call, and never before it has passed.
				if took < timeout || took >= hangGuard {
					t.Fatalf("undecided after %s, want after the %s timeout and before the %s guard", took, timeout, hangGuard)
				}
				wantFreshVerified(t, e, v)
			},
		},
		{
			name: "connection refused",
			run: func(t *testing.T, e *faultEnv) {
				host := registrytest.RefusedHost(t)
				v := newVerifier(t, e.reg, verifier.Options{AllowedHosts: []string{host}, InsecureRegistries: []string{host}})
				d, err := name.NewDigest(host+"/team/app@"+e.d.DigestStr(), name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 2 { // the second call is not served from a cache either
					_, took, err := timedVerify(t, v, d, e.set)
					wantUndecided(t, err, took, "connection refused")
					if i == 0 && e.reg.Requests() != 0 {
						t.Fatalf("the live registry saw requests: %v", e.reg.RequestLog())
					}
				}
				// The same verifier still verifies on a live registry.
				wantFreshVerified(t, e, v)
			},
		},
		{
			name: "signature manifest with 1,000 layers: capped",
			run:  func(t *testing.T, e *faultEnv) { manyLayers(t, e, 1000, true) },
		},
		{
			name: "signature manifest with 1,500 layers: refused",
			run:  func(t *testing.T, e *faultEnv) { manyLayers(t, e, 1500, false) },
		},
		{
			name: "garbage signature payloads",
			run: func(t *testing.T, e *faultEnv) {
				junk := make([]byte, 512)
				rand.Read(junk)
				random, err := static.NewSignature(junk, base64.StdEncoding.EncodeToString(junk[:64]))
				if err != nil {
					t.Fatal(err)
				}
				badB64, err := static.NewSignature(junk[64:], "%%% not base64 %%%")
				if err != nil {
					t.Fatal(err)
				}
				writeSigImage(t, e.reg, e.d, random, badB64)
				v := newVerifier(t, e.reg, verifier.Options{})
				_, took, err := timedVerify(t, v, e.d, e.set)
				var nv *verifier.NotVerifiedError
				if !errors.As(err, &nv) {
					t.Fatalf("err = %v (%T), want *NotVerifiedError", err, err)
				}
				t.Logf("%s: %v", took, nv)
			},
		},
		{
			name: "manifest bytes that do not hash to the digest",
			run: func(t *testing.T, e *faultEnv) {
				// Bundle too, so that manifests fetched by digest (the
				// referrer) are covered as well as the .sig tag.
				e.reg.Sign(t, e.alice, e.d, registrytest.Bundle)
				var altered atomic.Int64
				e.reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
					repo, ref, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/")
					if req.Method != http.MethodGet || !ok {
						return false
					}
					sep := ":"
					if strings.HasPrefix(ref, "sha256:") {
						sep = "@"
					}
					r, err := name.ParseReference(e.reg.Host+"/"+repo+sep+ref, name.Insecure)
					if err != nil {
						return false
					}
					desc, err := remote.Get(r, e.reg.RemoteOptions()...)
					if err != nil {
						return false
					}
					// Still valid JSON, other bytes: only the digest tells.
					body := append(bytes.Clone(desc.Manifest), '\n')
					w.Header().Set("Content-Type", string(desc.MediaType))
					w.Header().Set("Docker-Content-Digest", desc.Digest.String())
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.Write(body)
					altered.Add(1)
					return true
				})
				v := newVerifier(t, e.reg, verifier.Options{})
				res, took, err := timedVerify(t, v, e.d, e.set)
				if got := outcome(res, err); got == "verified" || strings.HasPrefix(got, "error") {
					t.Fatalf("outcome %q, want not verified or undecided; err %v", got, err)
				}
				if altered.Load() == 0 {
					t.Fatalf("no manifest was altered: %v", e.reg.RequestLog())
				}
				t.Logf("%s, %d manifests altered: %v", took, altered.Load(), err)
			},
		},
		{
			name: "tag moves to an unsigned digest between calls",
			run: func(t *testing.T, e *faultEnv) {
				v := newVerifier(t, e.reg, verifier.Options{TagTTL: -1})
				ref, err := verifier.ParseReference(e.reg.Host + "/team/app:v1")
				if err != nil {
					t.Fatal(err)
				}
				d1, err := v.Resolve(t.Context(), ref)
				if err != nil || d1.String() != e.d.String() {
					t.Fatalf("Resolve = %v, %v; want %s", d1, err, e.d)
				}
				d2 := e.reg.PushImage(t, "team/app", "v1") // repoint v1, unsigned
				e.reg.ResetRequests()
				if res, err := v.Verify(t.Context(), d1, e.set); outcome(res, err) != "verified" {
					t.Fatalf("Verify(D1) after the tag moved: %s (err %v)", outcome(res, err), err)
				}
				if n := count(e.reg, "GET /v2/team/app/manifests/v1") + count(e.reg, "HEAD /v2/team/app/manifests/v1"); n != 0 {
					t.Errorf("verification looked at the tag: %v", e.reg.RequestLog())
				}
				got, err := v.Resolve(t.Context(), ref)
				if err != nil || got.String() != d2.String() {
					t.Fatalf("Resolve after the move = %v, %v; want %s", got, err, d2)
				}
				_, err = v.Verify(t.Context(), got, e.set)
				var nv *verifier.NotVerifiedError
				if !errors.As(err, &nv) || nv.Reason != "no signatures found" {
					t.Fatalf("Verify(D2) = %v, want not verified: no signatures found", err)
				}
			},
		},
		{
			name: "credentials never follow a redirect to another host",
			run: func(t *testing.T, e *faultEnv) {
				// other holds the same image and signature; the first
				// registry redirects every manifest and blob GET there.
				other := registrytest.New(t)
				for _, r := range []name.Reference{e.d, e.d.Context().Tag(strings.Replace(e.d.DigestStr(), ":", "-", 1) + ".sig")} {
					img, err := remote.Image(r, e.reg.RemoteOptions()...)
					if err != nil {
						t.Fatal(err)
					}
					dst, err := name.ParseReference(strings.Replace(r.String(), e.reg.Host, other.Host, 1), name.Insecure)
					if err != nil {
						t.Fatal(err)
					}
					if err := remote.Write(dst, img, other.RemoteOptions()...); err != nil {
						t.Fatal(err)
					}
				}
				var firstAuth, otherAuth atomic.Int64
				e.reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
					if req.Header.Get("Authorization") != "" {
						firstAuth.Add(1)
					}
					if req.Method == http.MethodGet && (strings.Contains(req.URL.Path, "/manifests/") || strings.Contains(req.URL.Path, "/blobs/")) {
						http.Redirect(w, req, "http://"+other.Host+req.URL.Path, http.StatusTemporaryRedirect)
						return true
					}
					return false
				})
				other.SetFault(func(_ http.ResponseWriter, req *http.Request) bool {
					if req.Header.Get("Authorization") != "" {
						otherAuth.Add(1)
					}
					return false
				})
				v := newVerifier(t, e.reg, verifier.Options{
					Keychain:           hostKeychain{host: e.reg.Host},
					AllowedHosts:       []string{other.Host},
					InsecureRegistries: []string{other.Host},
				})
				res, err := v.Verify(t.Context(), e.d, e.set)
				if got := outcome(res, err); got != "verified" {
					t.Fatalf("outcome %s, want verified through the redirect; err %v", got, err)
				}
				if other.Requests() == 0 {
					t.Fatalf("no request was redirected; first registry log: %v", e.reg.RequestLog())
				}
				if firstAuth.Load() == 0 {
					t.Errorf("the first registry never saw credentials, so the test proves nothing: %v", e.reg.RequestLog())
				}
				if n := otherAuth.Load(); n != 0 {
					t.Errorf("the second host received Authorization on %d of %d requests: %v", n, other.Requests(), other.RequestLog())
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, alice, d := signedApp(t)
			reg.ResetRequests()
			tc.run(t, &faultEnv{
				reg:   reg,
				d:     d,
				alice: alice,
				set:   newSet(t, 0, authority("alice", alice)),
			})
		})
	}
}
