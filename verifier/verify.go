package verifier

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
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

var errNoVerifier = errors.New("no verifier for this key")

// maxDetails bounds the per-signature lines kept in a NotVerifiedError.
const maxDetails = 10

// Result is a successful verification.
type Result struct {
	Digest   name.Digest
	Verified []string // names of the authorities whose keys verified, sorted
	Cached   bool     // served from the verdict cache
}

// Verify checks that at least the set's threshold of distinct authorities
// signed d, in either cosign layout: the classic sha256-<hex>.sig tag, and
// sigstore bundles attached as OCI referrers (or the referrers fallback
// tag). Every signature must name d itself (claim check); a signature over
// another digest never counts.
//
// Definite answers are cached under (canonical repository, digest,
// set.Fingerprint()); concurrent calls for one key share one verification,
// which runs on its own deadline (Options.Timeout) so that one impatient
// caller cannot fail the others.
//
// Errors: *NotVerifiedError (definite) or *UndecidedError (transient).
func (v *Verifier) Verify(ctx context.Context, d name.Digest, set AuthoritySet) (Result, error) {
	q, res, known, err := v.lookup(d, set)
	if known {
		return res, err
	}
	v.opts.Observer.CacheRequest("verdict", "miss")
	d = q.digest
	val, err := v.flights.do(ctx, q.key, v.opts.Timeout, func(ctx context.Context) (any, error) {
		if err := v.acquireSlot(ctx); err != nil {
			return nil, undecided("verify", d.String(), err) // not run: neither cached nor counted
		}
		defer v.running.Release(1)
		verified, err := v.verify(ctx, d, set)
		if nv := (*NotVerifiedError)(nil); errors.As(err, &nv) && nv.AccessDenied {
			v.pullers.renew() // ask the keychain again: credentials may have been fixed
		}
		v.verdicts.put(q.key, verified, err)
		v.opts.Observer.Verification(outcome(err))
		return verified, err
	})
	var (
		nv *NotVerifiedError
		u  *UndecidedError
	)
	switch {
	case errors.As(err, &nv):
		return Result{}, nv.clone()
	case errors.As(err, &u):
		c := *u // waiters share the value; each gets its own
		return Result{}, &c
	case err != nil: // this caller's context ended first, or the work panicked (errInternal)
		return Result{}, undecided("verify", d.String(), err)
	}
	return Result{Digest: d, Verified: q.names(set, val.([]string))}, nil
}

// acquireSlot waits, within ctx (the shared verification's own: it ends
// at Options.Timeout or when every caller has gone), for one of the
// Options.MaxConcurrentVerifications slots.
func (v *Verifier) acquireSlot(ctx context.Context) error {
	v.waiting.Add(1)
	defer v.waiting.Add(-1)
	if err := v.running.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("wait for one of the %d verification slots: %w", v.opts.MaxConcurrentVerifications, err)
	}
	return nil
}

// Cached returns what Verify would answer when that needs no registry
// I/O: a cached verdict (counted as a verdict cache hit, as Verify counts
// it), or the rejection of a digest or set that is invalid. ok is false
// when only the registry can answer; nothing is counted then (Verify
// counts the miss). As from Verify, every call gets its own copies of the
// result and error. It lets a caller with many digests verify the cached
// ones on its own goroutine and start goroutines only for the rest.
func (v *Verifier) Cached(d name.Digest, set AuthoritySet) (res Result, ok bool, err error) {
	_, res, ok, err = v.lookup(d, set)
	return res, ok, err
}

// query is a verification after the checks and look-ups that need no I/O.
type query struct {
	digest name.Digest // canonical
	key    string      // verdict cache key
}

// names returns the caller's names for the verified keys: verdicts are
// shared by every set with the same keys, whatever each calls them.
func (q query) names(set AuthoritySet, keyIDs []string) []string {
	var names []string
	for id, a := range set.All() {
		if slices.Contains(keyIDs, id) {
			names = append(names, a.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// lookup does the part of Verify that needs no registry I/O: it
// canonicalizes d, checks that set was built by NewAuthoritySet (which
// validated it once) and looks the verdict up. known reports whether res
// and err are the answer.
func (v *Verifier) lookup(d name.Digest, set AuthoritySet) (q query, res Result, known bool, err error) {
	d, err = canonicalDigest(d)
	if err != nil {
		return q, Result{}, true, fmt.Errorf("verify %s: %w", d, err)
	}
	if set.Len() == 0 {
		return q, Result{}, true, &NotVerifiedError{Digest: d, Reason: "invalid authority set: no authorities (build sets with NewAuthoritySet)"}
	}
	q = query{digest: d, key: verdictKey(d, set.Fingerprint())}
	vd, ok := v.verdicts.get(q.key)
	if !ok {
		return q, Result{}, false, nil
	}
	v.opts.Observer.CacheRequest("verdict", "hit")
	if vd.err != nil {
		return q, Result{}, true, vd.err.clone()
	}
	return q, Result{Digest: d, Verified: q.names(set, vd.verified), Cached: true}, true, nil
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "verified"
	case IsUndecided(err):
		return "undecided"
	default:
		return "not_verified"
	}
}

// verify does the registry work for one digest and returns the encodings
// of the keys that verified. It reads one layout and the other only when
// the first does not reach the threshold: classic first, unless the last
// verification in this repository was decided by bundles. Either way a
// cold verification usually costs a manifest (or referrers list) and one
// manifest or blob per signature.
func (v *Verifier) verify(ctx context.Context, d name.Digest, set AuthoritySet) ([]string, error) {
	rd, err := v.remoteDigest(d)
	if err != nil {
		return nil, &NotVerifiedError{Digest: d, Reason: err.Error()}
	}
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, &NotVerifiedError{Digest: d, Reason: err.Error()}
	}
	t, err := newTally(set)
	if err != nil {
		return nil, &NotVerifiedError{Digest: d, Reason: err.Error()}
	}
	layouts := []func(context.Context, name.Digest, v1.Hash, *tally){v.verifyClassic, v.verifyBundles}
	repo := d.Context().Name()
	if v.layouts.bundlesFirst(repo) {
		slices.Reverse(layouts)
	}
	for _, check := range layouts {
		if !t.done() {
			check(ctx, rd, h, t)
		}
	}
	if t.done() {
		v.layouts.record(repo, t.byBundle && !t.byClassic)
	}
	return t.result(d)
}

// verifyClassic checks the signatures in the sha256-<hex>.sig tag. The
// manifest is read under Options.MaxSignatureManifestBytes and decoded
// one layer at a time: only the first MaxSignatures layers are kept
// (cosign's Signatures.Get would build every one of up to 1000), and the
// payload blob of each is fetched only when that signature is checked.
func (v *Verifier) verifyClassic(ctx context.Context, d name.Digest, h v1.Hash, t *tally) {
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	what := "signature tag " + tag.TagStr()
	ctx = withSignatureData(ctx)
	opts := v.remoteOptions(ctx, tag.Context())
	desc, err := remote.Get(tag, opts...)
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
			layer, err := remote.Layer(tag.Context().Digest(h.String()), opts...)
			if err != nil {
				return nil, err
			}
			r, err := layer.Compressed()
			if err != nil {
				return nil, err
			}
			defer r.Close()
			return io.ReadAll(r)
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

func (v *Verifier) checkClassic(ctx context.Context, what string, sig keyReadable, h v1.Hash, t *tally) {
	s, err := keySignature(sig)
	if err != nil {
		t.fail(what, err)
		return
	}
	t.signatures++
	var firstErr error
	for _, a := range t.pending() {
		err := errNoVerifier
		for _, sv := range a.verifiers {
			// Key authorities are offline keys that the cluster operator
			// trusts directly, so no transparency-log entry is required
			// (IgnoreTlog): the signature and the claim are checked against
			// the key alone, and signgate talks to nothing but the registry.
			co := &cosign.CheckOpts{
				SigVerifier:   sv,
				IgnoreTlog:    true,
				IgnoreSCT:     true,
				ClaimVerifier: cosign.SimpleClaimVerifier,
			}
			if _, err = cosign.VerifyImageSignature(ctx, s, h, co); err == nil {
				break
			}
		}
		if err == nil {
			t.verified(a)
			t.byClassic = true
		} else if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		t.reject(what, firstErr)
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
// an empty slice). With SigVerifier set and IgnoreTlog,
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

func (v *Verifier) checkBundle(ctx context.Context, what string, b *sgbundle.Bundle, alg string, digest []byte, t *tally) {
	t.signatures++
	var firstErr error
	for _, a := range t.pending() {
		err := errNoVerifier
		for _, sv := range a.verifiers {
			if err = verifyBundle(ctx, b, sv, alg, digest); err == nil {
				break
			}
		}
		if err == nil {
			t.verified(a)
			t.byBundle = true
		} else if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		t.reject(what, firstErr)
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

// capped notes the signatures beyond the first limit of total, which
// were not read.
func capped(total, limit int, t *tally) {
	if total > limit {
		t.reject("limit", fmt.Errorf("%d signatures beyond the first %d were ignored", total-limit, limit))
	}
}

// keyAuthority is one distinct key.
type keyAuthority struct {
	id        string
	verifiers []signature.Verifier
}

// tally collects what one verification found.
type tally struct {
	threshold  int
	keys       []*keyAuthority
	ok         map[string]bool
	signatures int
	details    []string
	unread     bool            // some signatures could not be read (definite)
	denied     bool            // ... because the registry answered 401/403
	refused    *RefusedError   // ... first because of one of the verifier's own rules
	byClassic  bool            // a classic signature verified
	byBundle   bool            // a bundle verified
	trouble    *UndecidedError // first transient failure
	oversized  string          // Reason: a signature manifest or referrers index was over its cap
}

func newTally(set AuthoritySet) (*tally, error) {
	t := &tally{threshold: set.Threshold(), ok: make(map[string]bool)}
	byID := make(map[string]*keyAuthority)
	for id, a := range set.All() {
		if byID[id] != nil {
			continue
		}
		vs, err := verifiers(a.Key)
		if err != nil {
			return nil, fmt.Errorf("authority %q: %w", a.Name, err)
		}
		k := &keyAuthority{id: id, verifiers: vs}
		byID[id] = k
		t.keys = append(t.keys, k)
	}
	return t, nil
}

// verifiers loads signature verifiers for a key: SHA-256 as cosign signs by
// default, plus SHA-384 for P-384 keys.
func verifiers(key crypto.PublicKey) ([]signature.Verifier, error) {
	hashes := []crypto.Hash{crypto.SHA256}
	if k, ok := key.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P384() {
		hashes = append(hashes, crypto.SHA384)
	}
	var vs []signature.Verifier
	for _, h := range hashes {
		sv, err := signature.LoadVerifier(key, h)
		if err != nil {
			return nil, err
		}
		vs = append(vs, sv)
	}
	return vs, nil
}

func (t *tally) done() bool { return len(t.ok) >= t.threshold }

func (t *tally) pending() []*keyAuthority {
	var p []*keyAuthority
	for _, k := range t.keys {
		if !t.ok[k.id] {
			p = append(p, k)
		}
	}
	return p
}

func (t *tally) verified(k *keyAuthority) { t.ok[k.id] = true }

// reject records why a signature did not count.
func (t *tally) reject(what string, err error) {
	t.details = append(t.details, what+": "+err.Error())
}

// fail records a fetch failure, classified like Resolve's: transient ones
// make the answer undecided unless the threshold is reached anyway.
func (t *tally) fail(what string, err error) {
	switch c := classify("verify", "", fmt.Errorf("%s: %w", what, err)).(type) {
	case *UndecidedError: // Ref is set by result
		if t.trouble == nil {
			t.trouble = c
		}
		return
	case *AccessDeniedError:
		t.denied = true
	case *RefusedError:
		if t.refused == nil { // Ref is set by result
			t.refused = c
		}
	}
	t.unread = true
	t.reject(what, err)
}

// failSignatureData is fail for the read of a signature manifest or
// referrers index (named by data, e.g. "signature manifest for
// sha256-<hex>.sig"), noting the Reason when it was larger than limit.
func (t *tally) failSignatureData(what, data string, limit int64, err error) {
	if errors.Is(err, errSignatureTooLarge) && t.oversized == "" {
		t.oversized = fmt.Sprintf("the registry's %s is larger than the %s limit", data, sizeText(limit))
	}
	t.fail(what, err)
}

func (t *tally) result(d name.Digest) ([]string, error) {
	if t.done() {
		var ids []string
		for _, k := range t.keys {
			if t.ok[k.id] {
				ids = append(ids, k.id)
			}
		}
		return ids, nil
	}
	if t.trouble != nil {
		u := *t.trouble
		u.Ref = d.String()
		return nil, &u
	}
	slices.Sort(t.details)
	if len(t.details) > maxDetails {
		t.details = append(t.details[:maxDetails], fmt.Sprintf("and %d more", len(t.details)-maxDetails))
	}
	nv := &NotVerifiedError{Digest: d, Details: t.details}
	if t.refused != nil {
		t.refused.Ref = d.String()
	}
	switch {
	case t.oversized != "":
		nv.Reason, nv.Refused = t.oversized, t.refused
	case t.signatures == 0 && t.denied:
		nv.Reason, nv.AccessDenied = "the registry denied signgate read access to the signatures", true
	case t.signatures == 0 && t.unread:
		nv.Reason, nv.Refused = "signatures could not be read", t.refused
	case t.signatures == 0:
		nv.Reason = "no signatures found"
	case len(t.ok) == 0:
		nv.Reason = "no valid signature from a trusted key"
	default:
		nv.Reason = fmt.Sprintf("only %d of the %d required authorities verified", len(t.ok), t.threshold)
	}
	return nil, nv
}
