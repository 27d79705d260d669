package verifier_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// FuzzRegistryContent: whatever a registry returns as signature data — the
// .sig manifest's bytes, a signature layer's annotations (certificate,
// chain, Rekor bundle, RFC 3161 timestamp, the signature itself), a
// sigstore bundle found as a referrer — verification ends in a typed
// answer that is never "verified" (nothing here is signed by the trusted
// key), and nothing panics: not in the test, and not inside a flight,
// where the verifier would recover it (counted by Observer.Panic).
// Seeds: testdata/fuzz/FuzzRegistryContent, including a certificate
// annotation of only whitespace, which used to end the process.
func FuzzRegistryContent(f *testing.F) {
	f.Add([]byte(nil), " \n", "", "", "", "", []byte(nil))
	f.Add([]byte(nil), "", "\t", "", "", "", []byte(nil))
	f.Add([]byte(nil), "", "", "{}", "{}", "bm90IGEgc2lnbmF0dXJl", []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{}]}`), "", "", "", "", "", []byte(nil))

	reg := registrytest.New(f)
	alice := registrytest.NewSigner(f)
	obs := &countingObserver{events: map[string]int{}}
	v := newVerifier(f, reg, verifier.Options{Observer: obs, CacheSize: -1})
	set := newSet(f, 0, authority("alice", alice))

	f.Fuzz(func(t *testing.T, manifest []byte, cert, chain, rekor, timestamp, b64sig string, bundle []byte) {
		d := reg.PushImage(t, "fuzz/app", "")
		sigTag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
		if len(manifest) > 0 {
			// Raw bytes under the .sig tag; a registry stores what it is given.
			if err := remote.Put(sigTag, rawManifest(manifest), reg.RemoteOptions()...); err != nil {
				return // not storable: nothing to read back
			}
		} else {
			payload, err := (&sigpayload.Cosign{Image: d}).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			ann := map[string]string{}
			for k, val := range map[string]string{
				static.CertificateAnnotationKey: cert, static.ChainAnnotationKey: chain,
				static.BundleAnnotationKey: rekor, static.RFC3161TimestampAnnotationKey: timestamp,
			} {
				if val != "" {
					ann[k] = val
				}
			}
			if b64sig == "" {
				b64sig = base64.StdEncoding.EncodeToString([]byte("not a signature"))
			}
			sig, err := static.NewSignature(payload, b64sig, static.WithAnnotations(ann))
			if err != nil {
				return
			}
			writeSigImage(t, reg, d, sig)
		}
		if len(bundle) > 0 {
			if err := ociremote.WriteAttestationNewBundleFormat(d, bundle, types.CosignSignPredicateType, ociremote.WithRemoteOptions(reg.RemoteOptions()...)); err != nil {
				return
			}
		}

		panics := obs.count("panic/verify")
		res, err := v.Verify(t.Context(), d, set)
		var (
			nv *verifier.NotVerifiedError
			u  *verifier.UndecidedError
		)
		switch {
		case err == nil:
			t.Fatalf("verified %v: nothing was signed by the trusted key", res.Verified)
		case !errors.As(err, &nv) && !errors.As(err, &u):
			t.Fatalf("err = %v (%T), want *NotVerifiedError or *UndecidedError", err, err)
		}
		if obs.count("panic/verify") > panics {
			t.Fatalf("verification panicked (recovered): %v", err)
		}
	})
}

// count returns how many events e were observed.
func (o *countingObserver) count(e string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.events[e]
}
