package verifier

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	cosigntypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/proto"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/verifier/bundle"
)

// bundleMediaTypePrefix marks sigstore bundles among an image's referrers.
const (
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	emptyConfigMediaType  = "application/vnd.oci.empty.v1+json"
)

// verifyBundles checks sigstore bundles found through the referrers API
// (refs: the index is read at most once per verification, shared with the
// attestation check). Bundles the attestation check already read are not
// read again: kept ones are checked, and those whose statement is not
// cosign's sign predicate are rejected unread.
func (v *Verifier) verifyBundles(ctx context.Context, refs *referrers, h v1.Hash, t *tally) {
	if !refs.list(t) {
		return
	}
	digest, err := hex.DecodeString(h.Hex)
	if err != nil {
		t.fail("digest", err)
		return
	}
	for _, desc := range refs.descs {
		if t.done() {
			return
		}
		what := "bundle " + desc.Digest.String()
		if pt, ok := refs.skipped[desc.Digest]; ok {
			t.signatures++
			t.reject(what, fmt.Errorf("bundle is not a cosign signature (predicate type %q)", pt))
			continue
		}
		b, err := refs.bundle(desc, false)
		if err != nil {
			t.fail(what, err)
			continue
		}
		if t.attest != nil {
			refs.keep(desc, b) // for the attestation check, which may run later in this pass
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
// against the artifact digest (verifyBundle) or, when it carries a
// certificate, for a keyless authority (checkKeyless).
func (v *Verifier) checkBundle(ctx context.Context, what string, b *sgbundle.Bundle, alg string, digest []byte, t *tally) {
	verified := t.check(what, func(sv signature.Verifier) error {
		return verifyBundle(ctx, b, sv, alg, digest)
	})
	if len(t.keyless) > 0 && !t.done() && checkKeyless(what, b, alg, digest, t) {
		verified = true
	}
	if verified {
		t.byBundle = true
	}
}

// referrers is the bundle layout of one verification, shared by the
// signature pass (verifyBundles) and the attestation check
// (attestations.checkBundles): the referrers index is read at most once,
// by whichever needs it first, and a bundle fetched by one is handed to
// the other when it is small enough to keep. Not safe for concurrent use
// (the tally is not either).
type referrers struct {
	v   *Verifier
	ctx context.Context
	d   name.Digest // as the registry is asked (remoteDigest)

	read  bool
	ok    bool // the index was read
	descs []v1.Descriptor
	// kept are bundles fetched by one pass for the other, at most
	// Options.MaxPayloadBytes of them in all (keptBytes); skipped are
	// bundles the attestation pass fetched and did not keep because their
	// statement is not cosign's sign predicate: no key or certificate can
	// make them signatures (the predicate type is read from the payload
	// that is signed), so the signature pass rejects them unread.
	kept      map[v1.Hash]*sgbundle.Bundle
	keptBytes int64
	skipped   map[v1.Hash]string // predicate type (capped)
}

func (v *Verifier) newReferrers(ctx context.Context, d name.Digest) *referrers {
	return &referrers{v: v, ctx: ctx, d: d, kept: make(map[v1.Hash]*sgbundle.Bundle), skipped: make(map[v1.Hash]string)}
}

// list reads the referrers index once (go-containerregistry falls back to
// the sha256-<hex> tag when the registry has no referrers API), under
// Options.MaxSignatureManifestBytes, decoded one entry at a time: only the
// first MaxSignatures entries that may be bundles are kept. ok is false
// when it could not be read (recorded in t, once).
func (r *referrers) list(t *tally) bool {
	if r.read {
		return r.ok
	}
	r.read = true
	ctx := withSignatureData(r.ctx)
	var idx v1.ImageIndex
	err := r.v.fromMirrors(ctx, r.d, func(ctx context.Context, ref name.Reference) (err error) {
		idx, err = remote.Referrers(ref.(name.Digest), r.v.remoteOptions(ctx, ref.Context())...)
		return err
	})
	if err != nil {
		t.failSignatureData("referrers", "referrers index for "+r.d.DigestStr(), r.v.opts.MaxSignatureManifestBytes, err)
		return false
	}
	raw, err := idx.RawManifest()
	if err != nil {
		t.fail("referrers", err)
		return false
	}
	descs, total, err := decodeDescriptors(raw, "manifests", r.v.opts.MaxSignatures, maybeBundle)
	if err != nil {
		t.fail("referrers", fmt.Errorf("read index: %w", err))
		return false
	}
	capped(total, r.v.opts.MaxSignatures, t)
	r.descs, r.ok = descs, true
	return true
}

// bundle fetches the bundle of one referrer, or returns the one the other
// pass kept. The attestation pass (attestation true) reads the bundle
// blob under Options.MaxAttestationBytes, the signature pass under
// Options.MaxPayloadBytes; a bundle over the latter is not kept, so the
// attestation pass reads it again under its own cap.
func (r *referrers) bundle(desc v1.Descriptor, attestation bool) (*sgbundle.Bundle, error) {
	if b, ok := r.kept[desc.Digest]; ok {
		return b, nil
	}
	ctx := withSignatureData(r.ctx)
	if attestation {
		ctx = withAttestationData(ctx)
	}
	var b *sgbundle.Bundle
	err := r.v.fromMirrors(ctx, r.d.Context().Digest(desc.Digest.String()), func(ctx context.Context, ref name.Reference) (err error) {
		b, err = ociremote.Bundle(ref, ociremote.WithRemoteOptions(r.v.remoteOptions(ctx, ref.Context())...))
		return err
	})
	return b, err
}

// keep hands b to the other pass (and to the attestation check of
// another authority) when it fits what is left of the
// Options.MaxPayloadBytes kept per verification.
func (r *referrers) keep(desc v1.Descriptor, b *sgbundle.Bundle) {
	if _, ok := r.kept[desc.Digest]; ok {
		return
	}
	n := int64(proto.Size(b.Bundle))
	if r.keptBytes+n > r.v.opts.MaxPayloadBytes {
		return
	}
	r.keptBytes += n
	r.kept[desc.Digest] = b
}

// maxCertValue caps a certificate value quoted in a message.
const maxCertValue = 200

// checkKeyless tries a bundle with a certificate against the keyless
// authorities (verifyKeyless); the claim check is keylessClaim. It
// reports whether an authority verified.
func checkKeyless(what string, b *sgbundle.Bundle, alg string, digest []byte, t *tally) bool {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		if len(t.keys) == 0 {
			t.reject(what, errKeySigned)
		}
		return false
	}
	if alg != "sha256" {
		t.reject(what, fmt.Errorf("digest algorithm %q not supported for keyless verification", alg))
		return false
	}
	return verifyKeyless(what, b, bundle.Artifact{SHA256: digest}, keylessClaim, t)
}

// errKeySigned is why a signature without a certificate is not tried
// against keyless authorities.
var errKeySigned = errors.New("signed with a key, not a certificate: no keyless authority can verify it")

// errClaim marks a claim check failure of a verified keyless signature.
var errClaim = errors.New("claim check")

// verifyKeyless tries a signed entity with a certificate (a bundle, or a
// classic signature made into one) against the keyless authorities still
// pending and, when its signer is not counted yet, against those already
// verified too (another signer for them may raise the count of distinct
// signers). The cryptography — chain, log entries, signing time, the
// signature over artifact, then claim — runs once per distinct trust
// root (TrustRoot.Digest: the same content verifies the same), and each
// authority of that trust root then matches the verified certificate's
// identity and extensions. It reports whether an authority verified.
func verifyKeyless(what string, entity verify.SignedEntity, artifact bundle.Artifact, claim func(bundle.Result) error, t *tally) bool {
	verified := false
	tried := make(map[string]bool) // trust root digests verified against
	for i, first := range t.keyless {
		root := first.k.TrustRoot
		if tried[root.Digest] || t.done() {
			continue
		}
		tried[root.Digest] = true
		res, err := bundle.Verify(entity, artifact, root.Material, bundle.Policy{
			Match: func(string, string, certificate.Extensions) error { return nil }, // each authority matches below
		})
		if err == nil {
			if cerr := claim(res); cerr != nil {
				err = fmt.Errorf("%w: %w", errClaim, cerr)
			}
		}
		for _, a := range t.keyless[i:] {
			if a.k.TrustRoot.Digest != root.Digest || t.done() {
				continue
			}
			err := err
			if err == nil {
				if merr := matchKeyless(a.k, res.SAN, res.Issuer, res.Extensions); merr != nil {
					err = &bundle.MatchError{Err: merr}
				}
			}
			if err != nil {
				if !t.ok[a.id] {
					rank, reason := keylessReason(a.k, err)
					t.keylessFailed(rank, reason)
					t.reject(what, fmt.Errorf("keyless (trust root %s): %w", a.k.TrustRoot.Name, err))
				}
				continue
			}
			signer := keylessSigner(res.SAN, res.Issuer)
			if t.ok[a.id] && !t.newSigner(signer) {
				continue
			}
			if t.credit(a.id, signer) {
				verified = true
			}
		}
	}
	return verified
}

// matchKeyless matches full certificate values; the error quotes them
// capped (Match run again on the capped values, for the words only).
func matchKeyless(k *authority.Keyless, subject, issuer string, ext certificate.Extensions) error {
	full := extensionMap(ext, false)
	err := k.Match(subject, issuer, full)
	if err == nil {
		return nil
	}
	capped := extensionMap(ext, true)
	if capText(subject) == subject && capText(issuer) == issuer && maps.Equal(full, capped) {
		return err
	}
	if err := k.Match(capText(subject), capText(issuer), capped); err != nil {
		return err
	}
	return fmt.Errorf("certificate subject %q from issuer %q does not match the authority", capText(subject), capText(issuer))
}

// keylessClaim is the claim check of the key path: the statement's
// subject was matched against the digest by bundle.Verify; the predicate
// must be cosign's signature predicate.
func keylessClaim(res bundle.Result) error {
	if res.Statement == nil {
		return errors.New("bundle is not a cosign signature (no in-toto statement)")
	}
	if pt := res.Statement.GetPredicateType(); pt != cosigntypes.CosignSignPredicateType {
		return fmt.Errorf("bundle is not a cosign signature (predicate type %q)", capText(pt))
	}
	return nil
}

// keylessReason says, for a Reason, why a keyless authority did not
// verify: the identity mismatch (certificate values quoted and capped by
// Match), an untrusted certificate, or a missing log entry or signing
// time. Nothing from the registry's own answers is included.
func keylessReason(k *authority.Keyless, err error) (int, string) {
	var me *bundle.MatchError
	switch {
	case errors.As(err, &me):
		return rankIdentity, me.Err.Error()
	case errors.Is(err, bundle.ErrUntrustedCertificate):
		return rankUntrusted, "certificate not issued by a Fulcio CA of TrustRoot " + k.TrustRoot.Name
	case errors.Is(err, bundle.ErrTransparencyLog):
		return rankUnlogged, "no transparency log entry verified against TrustRoot " + k.TrustRoot.Name
	case errors.Is(err, errClaim):
		return rankOther, "the signed payload is not a cosign signature of this image"
	case errors.Is(err, bundle.ErrTimestamp):
		return rankUnlogged, "no verified signing time (log entry or RFC 3161 timestamp of TrustRoot " + k.TrustRoot.Name + ") within the certificate's validity"
	}
	return rankOther, "the signature did not verify against TrustRoot " + k.TrustRoot.Name
}

// extensionMap converts Fulcio extensions to authority.ExtensionNames
// keys: the JSON names of certificate.Extensions; empty values left out.
func extensionMap(ext certificate.Extensions, capped bool) map[string]string {
	m := make(map[string]string)
	rv := reflect.ValueOf(ext)
	rt := rv.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || f.Type.Kind() != reflect.String {
			continue
		}
		if v := rv.Field(i).String(); v != "" {
			if capped {
				v = capText(v)
			}
			m[name] = v
		}
	}
	return m
}

// capText caps a certificate value: verified, but chosen by whoever got
// the certificate issued.
func capText(s string) string {
	if len(s) <= maxCertValue {
		return s
	}
	return strings.ToValidUTF8(s[:maxCertValue], "") + "…"
}

// verifyKeyBundle checks one DSSE bundle against one key with cosign's
// bundle verifier. There is no trusted root: the key is the trusted material,
// with no validity window, and — as for classic signatures — no
// transparency log or timestamp is required for a key authority
// (IgnoreTlog gives WithNoObserverTimestamps). The artifact policy is the
// claim check: the in-toto subject must be the digest being verified.
func verifyKeyBundle(ctx context.Context, b *sgbundle.Bundle, sv signature.Verifier, alg string, digest []byte) (*verify.VerificationResult, error) {
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
	return cosign.VerifyNewBundle(ctx, co, verify.WithArtifactDigest(alg, digest), b)
}

// verifyBundle checks one signature bundle against one key
// (verifyKeyBundle); the predicate must be cosign's signature predicate
// (a signed SBOM or other attestation about the image is not a
// signature).
func verifyBundle(ctx context.Context, b *sgbundle.Bundle, sv signature.Verifier, alg string, digest []byte) error {
	res, err := verifyKeyBundle(ctx, b, sv, alg, digest)
	if err != nil {
		return err
	}
	if res.Statement == nil || res.Statement.GetPredicateType() != cosigntypes.CosignSignPredicateType {
		return fmt.Errorf("bundle is not a cosign signature (predicate type %q)", res.Statement.GetPredicateType())
	}
	return nil
}
