package verifier_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// sigTag is d's classic signature tag.
func sigTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}

// rewriteSigManifest replaces d's .sig manifest (d must be signed in the
// classic layout) with one of n layers: layer valid is the real signature,
// every other one a copy of it with an invalid signature (same payload
// blob), padded by pad bytes of annotation. It returns the manifest size.
func rewriteSigManifest(t *testing.T, reg *registrytest.Registry, d name.Digest, n, valid, pad int) int {
	t.Helper()
	desc, err := remote.Get(sigTag(d), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	good := m.Layers[0]
	m.Layers = nil
	for i := range n {
		l := good
		l.Annotations = maps.Clone(good.Annotations)
		if i != valid {
			l.Annotations["dev.cosignproject.cosign/signature"] = base64.StdEncoding.EncodeToString([]byte("not a signature " + strconv.Itoa(i)))
		}
		if pad > 0 {
			l.Annotations["pad"] = strings.Repeat("x", pad)
		}
		m.Layers = append(m.Layers, l)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(sigTag(d), rawManifest(raw), reg.RemoteOptions()...); err != nil {
		t.Fatal(err)
	}
	return len(raw)
}

// TestOversizedSignatureManifest: a .sig manifest over
// MaxSignatureManifestBytes is a definite "not verified" naming it, and
// nothing it lists is fetched.
func TestOversizedSignatureManifest(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	size := rewriteSigManifest(t, reg, d, 5000, 0, 0)
	if size <= 512<<10 {
		t.Fatalf("manifest of %d bytes, want more than 512 KiB", size)
	}
	reg.ResetRequests()
	v := newVerifier(t, reg, verifier.Options{CacheSize: -1})
	_, err := v.Verify(t.Context(), d, newSet(t, 0, authority("alice", alice)))
	var nv *verifier.NotVerifiedError
	want := "the registry's signature manifest for " + sigTag(d).TagStr() + " is larger than the 512 KiB limit"
	if !errors.As(err, &nv) || nv.Reason != want {
		t.Fatalf("err = %v, want not verified: %s", err, want)
	}
	if n := count(reg, "GET /v2/team/app/blobs/"); n != 0 {
		t.Errorf("%d blobs fetched for an oversized manifest: %v", n, reg.RequestLog())
	}
	if n := verifier.BytesInFlight(v); n != 0 {
		t.Errorf("%d bytes still reserved after the verification", n)
	}
	t.Logf("%d-byte manifest: %v", size, err)
}

// TestOversizedReferrersIndex: a referrers index over the cap, sent
// without Content-Length so that the cap applies while reading, is a
// definite "not verified" naming it.
func TestOversizedReferrersIndex(t *testing.T) {
	t.Parallel()
	reg := registrytest.New(t)
	d := reg.PushImage(t, "team/app", "v1") // unsigned: the bundles layout is read
	entry := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":1},`
	reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.Contains(req.URL.Path, "/referrers/") {
			return false
		}
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`))
		w.(http.Flusher).Flush() // chunked: no Content-Length
		for range 600 << 10 / len(entry) {
			w.Write([]byte(entry))
		}
		w.Write([]byte(`{}]}`))
		return true
	})
	v := newVerifier(t, reg, verifier.Options{CacheSize: -1})
	_, err := v.Verify(t.Context(), d, newSet(t, 0, authority("alice", registrytest.NewSigner(t))))
	var nv *verifier.NotVerifiedError
	want := "the registry's referrers index for " + d.DigestStr() + " is larger than the 512 KiB limit"
	if !errors.As(err, &nv) || nv.Reason != want {
		t.Fatalf("err = %v, want not verified: %s", err, want)
	}
	if n := verifier.BytesInFlight(v); n != 0 {
		t.Errorf("%d bytes still reserved after the verification", n)
	}
}

// TestManySignaturesUnderTheCap: a .sig manifest of 1,000 layers under the
// byte cap still verifies when a valid signature is among the first
// MaxSignatures; the registry work is the manifest and one shared payload
// blob, not per layer.
func TestManySignaturesUnderTheCap(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	set := newSet(t, 0, authority("alice", alice))
	size := rewriteSigManifest(t, reg, d, 1000, 3, 0)
	for _, tc := range []struct {
		maxSigs int
		want    string
	}{
		{5, "verified"},
		{0, "verified"}, // default 100
		{3, "not verified: no valid signature from a trusted key"}, // the valid one is the 4th
	} {
		reg.ResetRequests()
		v := newVerifier(t, reg, verifier.Options{MaxSignatures: tc.maxSigs, CacheSize: -1})
		res, err := v.Verify(t.Context(), d, set)
		if got := outcome(res, err); got != tc.want {
			t.Errorf("MaxSignatures %d: %s (err %v), want %s", tc.maxSigs, got, err, tc.want)
		}
		if n := count(reg, "GET /v2/team/app/blobs/"); n != 1 {
			t.Errorf("MaxSignatures %d: %d blob fetches, want 1 (the shared payload): %v", tc.maxSigs, n, reg.RequestLog())
		}
		if n := count(reg, "GET /v2/team/app/manifests/"+sigTag(d).TagStr()); n != 1 {
			t.Errorf("MaxSignatures %d: %d .sig manifest fetches, want 1: %v", tc.maxSigs, n, reg.RequestLog())
		}
		if n := reg.Requests(); n > 5 {
			t.Errorf("MaxSignatures %d: %d requests, want at most 5: %v", tc.maxSigs, n, reg.RequestLog())
		}
		if n := verifier.BytesInFlight(v); n != 0 {
			t.Errorf("MaxSignatures %d: %d bytes still reserved", tc.maxSigs, n)
		}
	}
	t.Logf("%d-byte manifest of 1000 layers", size)
}

// TestMaxConcurrentVerifications: with one slot taken by a verification
// held at the registry, a second one waits without touching the registry
// and, when its caller gives up, is undecided; once the slot is free it
// verifies.
func TestMaxConcurrentVerifications(t *testing.T) {
	t.Parallel()
	reg, alice, d1 := signedApp(t)
	d2 := reg.PushImage(t, "team/other", "v1")
	reg.Sign(t, alice, d2, registrytest.Classic)
	set := newSet(t, 0, authority("alice", alice))
	v := newVerifier(t, reg, verifier.Options{MaxConcurrentVerifications: 1, CacheSize: -1})

	hold := registrytest.NewHold(nil)
	t.Cleanup(hold.Release)
	reg.SetFault(hold.Fault)
	first := make(chan error, 1)
	go func() {
		_, err := v.Verify(t.Context(), d1, set)
		first <- err
	}()
	<-hold.Arrived()

	ctx, cancel := context.WithCancel(t.Context())
	second := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, d2, set)
		second <- err
	}()
	waitFor(t, "the second verification to wait for a slot", func() bool { return verifier.VerificationsWaiting(v) == 1 })
	cancel()
	err := <-second
	if !verifier.IsUndecided(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("second verification = %v, want undecided: cancelled", err)
	}
	waitFor(t, "the waiting verification to leave", func() bool { return verifier.VerificationsWaiting(v) == 0 })
	if n := count(reg, "GET /v2/team/other/") + count(reg, "HEAD /v2/team/other/"); n != 0 {
		t.Errorf("the waiting verification reached the registry: %v", reg.RequestLog())
	}

	hold.Release()
	if err := <-first; err != nil {
		t.Fatalf("first verification = %v, want verified", err)
	}
	if res, err := v.Verify(t.Context(), d2, set); outcome(res, err) != "verified" {
		t.Fatalf("second verification afterwards = %v, want verified", err)
	}
	if n := verifier.BytesInFlight(v); n != 0 {
		t.Errorf("%d bytes still reserved", n)
	}
}

// TestBytesInFlight: the response budget is given back after every kind
// of verification, and a budget smaller than any body (each body then
// takes all of it) still verifies both layouts: no body is held while
// another is read.
func TestBytesInFlight(t *testing.T) {
	t.Parallel()
	reg, alice, classic := signedApp(t)
	bundled := reg.PushImage(t, "team/app", "v2")
	reg.Sign(t, alice, bundled, registrytest.Bundle)
	unsigned := reg.PushImage(t, "team/app", "v3")
	set := newSet(t, 0, authority("alice", alice))
	for _, budget := range []int64{0, 1} {
		v := newVerifier(t, reg, verifier.Options{MaxBytesInFlight: budget, CacheSize: -1})
		for d, want := range map[name.Digest]string{
			classic:  "verified",
			bundled:  "verified",
			unsigned: "not verified: no signatures found",
		} {
			res, err := v.Verify(t.Context(), d, set)
			if got := outcome(res, err); got != want {
				t.Errorf("budget %d, %s: %s (err %v), want %s", budget, d.DigestStr(), got, err, want)
			}
			if n := verifier.BytesInFlight(v); n != 0 {
				t.Errorf("budget %d, %s: %d bytes still reserved", budget, d.DigestStr(), n)
			}
		}
	}
}
