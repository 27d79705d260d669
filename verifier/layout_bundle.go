package verifier

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	cosigntypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// bundleMediaTypePrefix marks sigstore bundles among an image's referrers.
const (
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	emptyConfigMediaType  = "application/vnd.oci.empty.v1+json"
)

// verifyBundles checks sigstore bundles found through the referrers API
// (go-containerregistry falls back to the sha256-<hex> tag when the
// registry has no referrers API). The index is read under
// Options.MaxSignatureManifestBytes and decoded one entry at a time: only
// the first MaxSignatures entries that may be bundles are kept.
func (v *Verifier) verifyBundles(ctx context.Context, d name.Digest, h v1.Hash, t *tally) {
	ctx = withSignatureData(ctx)
	idx, err := remote.Referrers(d, v.remoteOptions(ctx, d.Context())...)
	if err != nil {
		t.failSignatureData("referrers", "referrers index for "+d.DigestStr(), v.opts.MaxSignatureManifestBytes, err)
		return
	}
	raw, err := idx.RawManifest()
	if err != nil {
		t.fail("referrers", err)
		return
	}
	idx = nil
	descs, total, err := decodeDescriptors(raw, "manifests", v.opts.MaxSignatures, maybeBundle)
	if err != nil {
		t.fail("referrers", fmt.Errorf("read index: %w", err))
		return
	}
	digest, err := hex.DecodeString(h.Hex)
	if err != nil {
		t.fail("digest", err)
		return
	}
	capped(total, v.opts.MaxSignatures, t)
	for _, desc := range descs {
		if t.done() {
			return
		}
		what := "bundle " + desc.Digest.String()
		b, err := ociremote.Bundle(d.Context().Digest(desc.Digest.String()), ociremote.WithRemoteOptions(v.remoteOptions(ctx, d.Context())...))
		if err != nil {
			t.fail(what, err)
			continue
		}
		v.checkBundle(ctx, what, b, h.Algorithm, digest, t)
	}
}

// maybeBundle skips referrers that clearly are something else (an SBOM, a
// Notation signature). Registries that derive artifactType from the config
// media type (go-containerregistry's, some others) report cosign bundles
// as the empty config type, so that one is kept too.
func maybeBundle(artifactType string) bool {
	switch {
	case artifactType == "", artifactType == emptyConfigMediaType:
		return true
	default:
		return strings.HasPrefix(artifactType, bundleMediaTypePrefix)
	}
}

// checkBundle counts one bundle: it must verify with an authority's key
// against the artifact digest (verifyBundle).
func (v *Verifier) checkBundle(ctx context.Context, what string, b *sgbundle.Bundle, alg string, digest []byte, t *tally) {
	verified := t.check(what, func(sv signature.Verifier) error {
		return verifyBundle(ctx, b, sv, alg, digest)
	})
	if verified {
		t.byBundle = true
	}
}

// verifyBundle checks one bundle against one key with cosign's bundle
// verifier. There is no trusted root: the key is the trusted material,
// with no validity window, and — as for classic signatures — no
// transparency log or timestamp is required for a key authority
// (IgnoreTlog gives WithNoObserverTimestamps). The artifact policy is the
// claim check: the in-toto subject must be the digest being verified, and
// the predicate must be cosign's signature predicate (a signed SBOM or
// other attestation about the image is not a signature).
func verifyBundle(ctx context.Context, b *sgbundle.Bundle, sv signature.Verifier, alg string, digest []byte) error {
	key := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	material := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return key, nil
	})
	co := &cosign.CheckOpts{
		SigVerifier:     sv,
		TrustedMaterial: material,
		IgnoreTlog:      true,
		IgnoreSCT:       true,
		NewBundleFormat: true,
	}
	res, err := cosign.VerifyNewBundle(ctx, co, verify.WithArtifactDigest(alg, digest), b)
	if err != nil {
		return err
	}
	if res.Statement == nil || res.Statement.GetPredicateType() != cosigntypes.CosignSignPredicateType {
		return fmt.Errorf("bundle is not a cosign signature (predicate type %q)", res.Statement.GetPredicateType())
	}
	return nil
}
