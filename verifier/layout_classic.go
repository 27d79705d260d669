package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
)

// verifyClassic checks the signatures in the sha256-<hex>.sig tag. The
// manifest is read under Options.MaxSignatureManifestBytes and decoded
// one layer at a time: only the first MaxSignatures layers are kept
// (cosign's Signatures.Get would build every one of up to 1000), and the
// payload blob of each is fetched only when that signature is checked.
func (v *Verifier) verifyClassic(ctx context.Context, d name.Digest, h v1.Hash, t *tally) {
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	what := "signature tag " + tag.TagStr()
	ctx = withSignatureData(ctx)
	var desc *remote.Descriptor
	err := v.fromMirrors(ctx, tag, func(ctx context.Context, ref name.Reference) (err error) {
		desc, err = remote.Get(ref, v.remoteOptions(ctx, ref.Context())...)
		return err
	})
	if te := (*transport.Error)(nil); errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return // no signatures in this layout
	}
	if err != nil {
		t.failSignatureData(what, "signature manifest for "+tag.TagStr(), v.opts.MaxSignatureManifestBytes, err)
		return
	}
	if desc.MediaType.IsIndex() || desc.MediaType.IsSchema1() {
		t.fail(what, errors.New("not a signature image manifest"))
		return
	}
	layers, total, err := decodeDescriptors(desc.Manifest, "layers", v.opts.MaxSignatures, nil)
	desc = nil // the manifest bytes are not needed any more
	if err != nil {
		t.fail(what, fmt.Errorf("read manifest: %w", err))
		return
	}
	if total > maxClassicLayers {
		t.fail(what, oci.NewMaxLayersExceeded(int64(total), maxClassicLayers))
		return
	}
	capped(total, v.opts.MaxSignatures, t)
	payloads := make(map[v1.Hash][]byte)
	for i, l := range layers {
		if t.done() {
			return
		}
		sig := sigLayer{desc: l, payloads: payloads, fetch: func(h v1.Hash) ([]byte, error) {
			return v.readBlob(ctx, tag.Context().Digest(h.String()))
		}}
		v.checkClassic(ctx, fmt.Sprintf("signature %d in %s", i, tag.TagStr()), sig, h, t)
	}
}

// sigLayer is one layer of a .sig manifest, read the way cosign reads
// it (pkg/oci/internal/signature): the base64 signature and the other
// annotations from the descriptor, the payload from the blob it names.
// Each distinct payload blob of one .sig manifest is fetched once:
// signatures by several keys, or a hostile manifest repeating one layer,
// all point at the same blob. The blob is read by digest and
// go-containerregistry checks the bytes against it, so the digest is a
// sound key.
type sigLayer struct {
	desc     v1.Descriptor
	payloads map[v1.Hash][]byte
	fetch    func(v1.Hash) ([]byte, error)
}

// cosignSignatureAnnotation holds a classic signature, base64.
const cosignSignatureAnnotation = "dev.cosignproject.cosign/signature"

func (s sigLayer) Payload() ([]byte, error) {
	if p, ok := s.payloads[s.desc.Digest]; ok {
		return p, nil
	}
	p, err := s.fetch(s.desc.Digest)
	if err != nil {
		return nil, err
	}
	s.payloads[s.desc.Digest] = p
	return p, nil
}

func (s sigLayer) Base64Signature() (string, error) {
	b64sig, ok := s.desc.Annotations[cosignSignatureAnnotation]
	if !ok {
		return "", fmt.Errorf("signature layer %s is missing %q annotation", s.desc.Digest, cosignSignatureAnnotation)
	}
	return b64sig, nil
}

func (s sigLayer) MediaType() (types.MediaType, error) { return s.desc.MediaType, nil }

func (s sigLayer) Annotations() (map[string]string, error) { return s.desc.Annotations, nil }

// keyReadable is what keySignature reads of a signature.
type keyReadable interface {
	Payload() ([]byte, error)
	Base64Signature() (string, error)
	MediaType() (types.MediaType, error)
	Annotations() (map[string]string, error)
}

// checkClassic counts one classic signature: its payload must name h
// (cosign's claim check) and its signature must verify with an authority's
// key or, when it carries a certificate, for a keyless authority
// (checkKeylessClassic).
func (v *Verifier) checkClassic(ctx context.Context, what string, sig keyReadable, h v1.Hash, t *tally) {
	s, err := keySignature(sig)
	if err != nil {
		t.fail(what, err)
		return
	}
	// Key authorities are offline keys that the cluster operator trusts
	// directly, so no transparency-log entry is required (IgnoreTlog): the
	// signature and the claim are checked against the key alone, and
	// signgate talks to nothing but the registry.
	verified := t.check(what, func(sv signature.Verifier) error {
		co := &cosign.CheckOpts{
			SigVerifier:   sv,
			IgnoreTlog:    true,
			IgnoreSCT:     true,
			ClaimVerifier: cosign.SimpleClaimVerifier,
		}
		_, err := cosign.VerifyImageSignature(ctx, s, h, co)
		return err
	})
	if len(t.keyless) > 0 && !t.done() && checkKeylessClassic(what, s, h, t) {
		verified = true
	}
	if verified {
		t.byClassic = true
	}
}

// keySignature copies what checking sig against a key reads: the payload
// (capped by the transport; through sharedPayload, once per blob), the
// base64 signature, the media type and the annotations. Unlike
// static.Copy it parses neither the certificate and chain annotations nor
// the Rekor bundle and RFC 3161 timestamp ones: a key authority uses none
// of them (no transparency log, no signed timestamp, the key is the
// trusted material), and cosign's parsers are not safe on hostile values
// (a certificate annotation of only whitespace makes sigLayer.Cert index
// an empty slice); the keyless path reads those annotations with its own
// parsers (classicEntity). With SigVerifier set and IgnoreTlog,
// cosign.VerifyImageSignature reads Base64Signature, Payload and Cert,
// which for this copy is nil.
func keySignature(sig keyReadable) (oci.Signature, error) {
	payload, err := sig.Payload()
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	b64sig, err := sig.Base64Signature()
	if err != nil {
		return nil, err
	}
	mt, err := sig.MediaType()
	if err != nil {
		return nil, fmt.Errorf("read media type: %w", err)
	}
	ann, err := sig.Annotations()
	if err != nil {
		return nil, fmt.Errorf("read annotations: %w", err)
	}
	return static.NewSignature(payload, b64sig, static.WithLayerMediaType(mt), static.WithAnnotations(maps.Clone(ann)))
}

// readBlob reads the blob d names (from a mirror when its registry has
// some); go-containerregistry checks the bytes against d.
func (v *Verifier) readBlob(ctx context.Context, d name.Digest) ([]byte, error) {
	var b []byte
	err := v.fromMirrors(ctx, d, func(ctx context.Context, ref name.Reference) error {
		layer, err := remote.Layer(ref.(name.Digest), v.remoteOptions(ctx, ref.Context())...)
		if err != nil {
			return err
		}
		r, err := layer.Compressed()
		if err != nil {
			return err
		}
		defer r.Close()
		b, err = io.ReadAll(r)
		return err
	})
	return b, err
}
