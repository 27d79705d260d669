package verifier

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/verifier/bundle"
)

// attestations reads the classic sha256-<hex>.att tag (what `cosign
// attest` writes: an image whose layers are DSSE envelopes of in-toto
// statements) for one verification, lazily: the manifest is read at most
// once, the first time an authority requiring attestations verifies a
// signature, and not at all when none does. Each layer blob is read when
// an authority's requirements are checked, under
// Options.MaxAttestationBytes; it is not kept (an SBOM may be MiBs), so
// two authorities requiring attestations read the blobs they need each.
// Conditions share one cost budget (attestation.PerReviewCost) per
// verification. The bundle layout (attestation bundles among the
// referrers) is read through refs, shared with the signature pass; see
// check for which layout is read when. Not safe for concurrent use (the
// tally is not either).
type attestations struct {
	v      *Verifier
	ctx    context.Context
	d      name.Digest // as the registry is asked (remoteDigest)
	h      v1.Hash
	repo   string // canonical repository, as conditions see it
	now    time.Time
	budget *attestation.Budget
	refs   *referrers // the bundle layout, shared with the signature pass

	read   bool
	ok     bool // the manifest was read (or there is none)
	tag    name.Tag
	rctx   context.Context // what the layer blobs are read with
	layers []v1.Descriptor
}

func (v *Verifier) newAttestations(ctx context.Context, canonical, d name.Digest, h v1.Hash, refs *referrers) *attestations {
	return &attestations{
		v: v, ctx: ctx, d: d, h: h, refs: refs,
		repo:   canonical.Context().Name(),
		now:    time.Now(),
		budget: attestation.NewBudget(attestation.PerReviewCost),
	}
}

// load reads the .att manifest once; ok is false when it could not be
// read (recorded in t: a transient failure makes the verification
// undecided, an oversized manifest is the Reason).
func (a *attestations) load(t *tally) bool {
	if a.read {
		return a.ok
	}
	a.read = true
	a.tag = a.d.Context().Tag(strings.Replace(a.d.DigestStr(), ":", "-", 1) + ".att")
	what := "attestation tag " + a.tag.TagStr()
	ctx := withAttestationData(withSignatureData(a.ctx))
	a.rctx = ctx
	var desc *remote.Descriptor
	err := a.v.fromMirrors(ctx, a.tag, func(ctx context.Context, ref name.Reference) (err error) {
		desc, err = remote.Get(ref, a.v.remoteOptions(ctx, ref.Context())...)
		return err
	})
	if te := (*transport.Error)(nil); errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		a.ok = true // no attestations
		return true
	}
	if err != nil {
		t.failSignatureData(what, "attestation manifest for "+a.tag.TagStr(), a.v.opts.MaxSignatureManifestBytes, err)
		return false
	}
	if desc.MediaType.IsIndex() || desc.MediaType.IsSchema1() {
		t.fail(what, errors.New("not an attestation image manifest"))
		return false
	}
	layers, total, err := decodeDescriptors(desc.Manifest, "layers", a.v.opts.MaxSignatures, nil)
	if err != nil {
		t.fail(what, fmt.Errorf("read manifest: %w", err))
		return false
	}
	if total > maxClassicLayers {
		t.fail(what, oci.NewMaxLayersExceeded(int64(total), maxClassicLayers))
		return false
	}
	if total > len(layers) {
		t.reject(what, fmt.Errorf("%d attestations beyond the first %d were ignored", total-len(layers), len(layers)))
	}
	a.layers, a.ok = layers, true
	return true
}

// blob reads one layer's envelope under Options.MaxAttestationBytes.
func (a *attestations) blob(h v1.Hash) ([]byte, error) {
	return a.v.readBlob(a.rctx, a.tag.Context().Digest(h.String()))
}

// statement is what is read of a signed in-toto statement. The predicate
// type is the signed one: a layer's predicateType annotation is not
// signed and never read.
type statement struct {
	Type          string            `json:"_type"`
	PredicateType string            `json:"predicateType"`
	Subject       []json.RawMessage `json:"subject"`
	Predicate     json.RawMessage   `json:"predicate"`
}

// failure is why a requirement is not satisfied, ranked: the most telling
// kept.
type failure struct {
	rank int
	text string
}

const (
	failNone     = iota // no attestation of the type signed by the authority
	failSubject         // ... only about another image
	failEvaluate        // ... whose condition was false or failed
)

// check checks authority id's requirements against both attestation
// layouts: each must be satisfied by an attestation of its predicate type
// signed by the authority, whose subject names the image and for which
// the condition holds, found in the classic .att tag (checkClassic) or
// among the sigstore bundles attached as referrers (checkBundles). The
// second layout is read only when the first did not satisfy every
// requirement; the .att tag comes first unless the referrers index was
// read already (the bundle layout's signature pass, or another
// authority's check). The predicate type is always the signed
// statement's. reason is "" when all are satisfied, else why the first
// listed one is not; ok is false when the attestations could not be read
// (recorded in t) and did not satisfy every requirement anyway.
func (a *attestations) check(t *tally, id string, at *attested) (reason string, ok bool) {
	c := &attCheck{
		a: a, t: t, at: at,
		satisfied: make([]bool, len(at.reqs)),
		failed:    make([]failure, len(at.reqs)),
		left:      len(at.reqs),
	}
	if at.keyless != nil {
		digest, err := hex.DecodeString(a.h.Hex)
		if err != nil || a.h.Algorithm != "sha256" {
			return c.prefix(at.reqs[0]) + fmt.Sprintf("digest algorithm %q not supported for keyless attestations", a.h.Algorithm), true
		}
		c.digest = digest
	}
	// Read first the layout already listed for this verification, else the
	// one this repository's attestations were last found in (a wrong hint
	// costs one request, never an answer).
	sources := []func(*attCheck) bool{a.checkClassic, a.checkBundles}
	bundlesAt := 1 // index of checkBundles in sources
	if !a.read && (a.refs.read || a.v.attested.bundlesFirst(a.repo)) {
		slices.Reverse(sources)
		bundlesAt = 0
	}
	unreadable := false
	var found [2]int // requirements satisfied by sources[i]
	for i, src := range sources {
		if c.left == 0 {
			break
		}
		left := c.left
		if !src(c) {
			if a.ctx.Err() != nil {
				return "", false
			}
			unreadable = true
		}
		found[i] = left - c.left
	}
	if (found[0] > 0) != (found[1] > 0) { // one layout held what was found
		a.v.attested.record(a.repo, found[bundlesAt] > 0)
	}
	if c.left > 0 && unreadable {
		return "", false
	}
	for j, r := range at.reqs {
		if c.satisfied[j] {
			continue
		}
		text := c.failed[j].text
		if c.failed[j].rank == failNone {
			text = "no attestation of this type signed by the authority"
			if c.unread > 0 {
				text += fmt.Sprintf(" (%d attestations could not be read)", c.unread)
			}
			if c.keyless.text != "" {
				text += " (one that did not verify: " + c.keyless.text + ")"
			}
		}
		return c.prefix(r) + text, true
	}
	return "", true
}

// attCheck is one authority's requirements being checked, across both
// layouts.
type attCheck struct {
	a         *attestations
	t         *tally
	at        *attested
	digest    []byte // the image's SHA-256, for a keyless authority
	satisfied []bool
	failed    []failure
	left      int     // requirements not satisfied yet
	unread    int     // attestations that could not be read (definite)
	keyless   failure // why the most telling keyless attestation did not verify (ranked as keylessFailed ranks)
}

func (c *attCheck) prefix(r *attestation.Requirement) string {
	return fmt.Sprintf("attestation %s (%s) of authority %s: ", r.Name, r.PredicateType, c.at.name)
}

// wants reports whether an unsatisfied requirement is of predicate type pt.
func (c *attCheck) wants(pt string) bool {
	for j, r := range c.at.reqs {
		if !c.satisfied[j] && r.PredicateType == pt {
			return true
		}
	}
	return false
}

// fail notes why the requirements of predicate type pt are not satisfied,
// unless a more telling reason is known.
func (c *attCheck) fail(pt string, f failure) {
	for j, r := range c.at.reqs {
		if r.PredicateType == pt && c.failed[j].rank < f.rank {
			c.failed[j] = f
		}
	}
}

// keylessFailed ranks why a keyless attestation did not verify.
func (c *attCheck) keylessFailed(err error) {
	if err == nil || errors.Is(err, errKeySigned) {
		return
	}
	if rank, reason := keylessAttestationReason(c.at.keyless, err); rank > c.keyless.rank {
		c.keyless = failure{rank, reason}
	}
}

// unreadable handles an attestation (layer or bundle) that could not be
// read: a transient failure is recorded in t and ends the check (false).
func (c *attCheck) unreadable(what string, err error) bool {
	if IsUndecided(classify("verify", "", err)) {
		c.t.fail(what, err)
		return false
	}
	c.unread++
	c.t.reject(what, err)
	return true
}

// consider evaluates a verified in-toto payload (the statement the
// authority signed, from either layout) against the requirements of its
// predicate type. It returns false when the verification's deadline
// ended the evaluation (recorded in t).
func (c *attCheck) consider(what string, payload []byte) bool {
	a, t := c.a, c.t
	var st statement
	if err := json.Unmarshal(payload, &st); err != nil {
		t.reject(what, fmt.Errorf("signed payload is not an in-toto statement: %w", err))
		return true
	}
	if !strings.HasPrefix(st.Type, "https://in-toto.io/Statement/") {
		t.reject(what, fmt.Errorf("signed payload is not an in-toto statement (_type %q)", capText(st.Type)))
		return true
	}
	if !c.wants(st.PredicateType) {
		return true
	}
	in, err := a.input(st)
	if err != nil {
		t.reject(what, err)
		c.fail(st.PredicateType, failure{failSubject, err.Error()})
		return true
	}
	for j, r := range c.at.reqs {
		if c.satisfied[j] || r.PredicateType != st.PredicateType {
			continue
		}
		holds, msg, err := r.Eval(a.ctx, *in, a.budget)
		if err != nil && a.ctx.Err() != nil { // the deadline, not the attestation
			t.fail(what, context.Cause(a.ctx))
			return false
		}
		switch {
		case holds:
			c.satisfied[j] = true
			c.left--
			continue
		case errors.Is(err, attestation.ErrCost):
			msg = "cost limit exceeded"
		case err != nil:
			msg = "condition error: " + capText(strings.TrimPrefix(err.Error(), "condition: "))
		case msg != "":
			msg = "condition false: " + capText(msg)
		default:
			msg = "condition false"
		}
		t.reject(what, fmt.Errorf("%s: %s", r.Name, msg))
		if c.failed[j].rank < failEvaluate {
			c.failed[j] = failure{failEvaluate, msg}
		}
	}
	return true
}

// checkClassic checks the .att tag's layers: DSSE envelopes verified with
// the authority's key or, for a keyless authority, by
// verifyKeylessEnvelope against its TrustRoot and identities. It returns
// false when they could not be read (recorded in t).
func (a *attestations) checkClassic(c *attCheck) bool {
	t, at := c.t, c.at
	open := func(_ map[string]string, env []byte) ([]byte, error) { return verifyEnvelope(env, at.verifiers) }
	if at.keyless != nil {
		open = func(ann map[string]string, env []byte) ([]byte, error) {
			payload, err := verifyKeylessEnvelope(at.keyless, env, ann, c.digest)
			c.keylessFailed(err)
			return payload, err
		}
	}
	if !a.load(t) {
		return false
	}
	for i, l := range a.layers {
		if c.left == 0 {
			break
		}
		what := fmt.Sprintf("attestation %d in %s", i, a.tag.TagStr())
		if l.MediaType != types.DssePayloadType {
			t.reject(what, fmt.Errorf("media type %q is not a DSSE envelope", l.MediaType))
			continue
		}
		env, err := a.blob(l.Digest)
		if err != nil {
			if !c.unreadable(what, err) {
				return false
			}
			continue
		}
		payload, err := open(l.Annotations, env)
		if err != nil {
			t.reject(what, err)
			continue
		}
		if !c.consider(what, payload) {
			return false
		}
	}
	return true
}

// checkBundles checks the sigstore bundles attached as referrers (what
// `cosign attest --new-bundle-format` writes), from the index shared with
// the signature pass. A bundle is verified only when the statement it
// carries is of a predicate type still required (the referrer's
// dev.sigstore.bundle.predicateType annotation is not signed and never
// read): for a key authority with its key (verifyAttestationBundle: the
// DSSE signature, and the statement's subject against the image digest),
// for a keyless one against its TrustRoot and identities
// (verifyKeylessAttestation). Bundle blobs are read under
// Options.MaxAttestationBytes. It returns false when they could not be
// read (recorded in t).
func (a *attestations) checkBundles(c *attCheck) bool {
	t, at, refs := c.t, c.at, a.refs
	if !refs.list(t) {
		return false
	}
	for _, desc := range refs.descs {
		if c.left == 0 {
			break
		}
		what := "attestation bundle " + desc.Digest.String()
		b, err := refs.bundle(desc, true)
		if err != nil {
			if !c.unreadable(what, err) {
				return false
			}
			continue
		}
		refs.keep(desc, b)
		env := b.GetDsseEnvelope()
		if env == nil {
			continue // a message signature, not an attestation
		}
		var unverified statement // only to skip what cannot satisfy a requirement; the verified one counts
		_ = json.Unmarshal(env.GetPayload(), &unverified)
		if unverified.PredicateType != types.CosignSignPredicateType {
			if _, ok := refs.kept[desc.Digest]; !ok {
				refs.skipped[desc.Digest] = capText(unverified.PredicateType)
			}
		}
		if unverified.PredicateType == types.CosignSignPredicateType || !c.wants(unverified.PredicateType) {
			continue
		}
		var payload []byte
		if at.keyless != nil {
			payload, err = verifyKeylessAttestation(at.keyless, b, c.digest)
			c.keylessFailed(err)
		} else {
			payload, err = verifyAttestationBundle(a.ctx, b, at.verifiers, a.h)
			if aboutAnotherImage(err) {
				c.fail(unverified.PredicateType, failure{failSubject, "an attestation of this type signed by the authority is about another image"})
			}
		}
		if err != nil {
			t.reject(what, err)
			continue
		}
		if !c.consider(what, payload) {
			return false
		}
	}
	return true
}

// input decodes what a condition sees of a statement, after the claim
// check: a subject must name the image's digest.
func (a *attestations) input(st statement) (*attestation.Input, error) {
	subjects := make([]any, 0, len(st.Subject))
	about := false
	for _, raw := range st.Subject {
		var s struct {
			Digest map[string]string `json:"digest"`
		}
		if json.Unmarshal(raw, &s) == nil && s.Digest["sha256"] == a.h.Hex && a.h.Algorithm == "sha256" {
			about = true
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
		subjects = append(subjects, v)
	}
	if !about {
		return nil, errors.New("an attestation of this type signed by the authority is about another image")
	}
	var pred any
	if len(st.Predicate) > 0 {
		if err := json.Unmarshal(st.Predicate, &pred); err != nil {
			return nil, fmt.Errorf("predicate: %w", err)
		}
	}
	return &attestation.Input{
		Predicate:     pred,
		PredicateType: st.PredicateType,
		Subject:       subjects,
		Repository:    a.repo,
		Digest:        a.h.String(),
		Now:           a.now,
	}, nil
}

// verifyEnvelope verifies a DSSE envelope of an in-toto payload with one
// of an authority's verifiers (sigstore's DSSE wrapper: the signature is
// over PAE(payloadType, payload)) and returns the payload it signed.
func verifyEnvelope(env []byte, verifiers []signature.Verifier) ([]byte, error) {
	err := errNoVerifier
	for _, sv := range verifiers {
		var payload []byte
		dv := dsse.WrapVerifier(sv, dsse.WithExpectedPayloadType(types.IntotoPayloadType), dsse.WithDecodedPayload(&payload))
		if err = dv.VerifySignature(bytes.NewReader(env), nil); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("not signed by the authority: %w", err)
}

// verifyKeylessEnvelope verifies a classic keyless attestation (a DSSE
// envelope layer with cosign's certificate, chain, Rekor bundle and
// timestamp annotations) for a keyless authority on the bundle core, as
// a classic keyless signature is: made a v0.1 bundle
// (classicAttestationEntity) and verified against the authority's
// TrustRoot, its identities and extensions matched on the verified
// certificate. sigstore-go checks the in-toto statement's subject
// against digest (the image's SHA-256): an attestation about another
// image does not verify. It returns the signed payload.
func verifyKeylessEnvelope(k *authority.Keyless, env []byte, ann map[string]string, digest []byte) ([]byte, error) {
	entity, err := classicAttestationEntity(env, ann)
	if err != nil {
		return nil, forKind(kindAttestation, err)
	}
	return verifyKeylessAttestation(k, entity, digest)
}

// verifyKeylessAttestation verifies a DSSE bundle (an attestation bundle
// of the bundle layout, or a classic keyless attestation made into one)
// for a keyless authority: against its TrustRoot, its identities and
// extensions matched on the verified certificate, the statement's subject
// against digest (the image's SHA-256) by sigstore-go. A bundle without a
// certificate is errKeySigned. It returns the signed payload.
func verifyKeylessAttestation(k *authority.Keyless, entity *sgbundle.Bundle, digest []byte) ([]byte, error) {
	pe := entity.GetDsseEnvelope()
	if pe == nil {
		return nil, errors.New("not a DSSE envelope")
	}
	if vc, err := entity.VerificationContent(); err != nil || vc.Certificate() == nil {
		return nil, errKeySigned
	}
	if pe.GetPayloadType() != types.IntotoPayloadType {
		return nil, fmt.Errorf("envelope payload type %q is not in-toto", capText(pe.GetPayloadType()))
	}
	_, err := bundle.Verify(entity, bundle.Artifact{SHA256: digest}, k.TrustRoot.Material, bundle.Policy{
		Match: func(subject, issuer string, ext certificate.Extensions) error {
			return matchKeyless(k, subject, issuer, ext)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("keyless (trust root %s): %w", k.TrustRoot.Name, err)
	}
	return pe.GetPayload(), nil
}

// verifyAttestationBundle verifies an attestation bundle of the bundle
// layout for a key authority, as verifyBundle verifies a signature
// bundle (cosign's bundle verifier, the key as the trusted material, the
// statement's subject checked against h), with one of its verifiers, and
// returns the signed statement. cosign's sign predicate is a signature,
// not an attestation.
func verifyAttestationBundle(ctx context.Context, b *sgbundle.Bundle, verifiers []signature.Verifier, h v1.Hash) ([]byte, error) {
	digest, err := hex.DecodeString(h.Hex)
	if err != nil {
		return nil, err
	}
	if pt := b.GetDsseEnvelope().GetPayloadType(); pt != types.IntotoPayloadType {
		return nil, fmt.Errorf("envelope payload type %q is not in-toto", capText(pt))
	}
	err = errNoVerifier
	for _, sv := range verifiers {
		var res *verify.VerificationResult
		if res, err = verifyKeyBundle(ctx, b, sv, h.Algorithm, digest); err != nil {
			continue
		}
		if res.Statement == nil || res.Statement.GetPredicateType() == types.CosignSignPredicateType {
			return nil, errors.New("bundle is not an attestation")
		}
		return b.GetDsseEnvelope().GetPayload(), nil
	}
	return nil, fmt.Errorf("not signed by the authority: %w", err)
}

// aboutAnotherImage reports whether sigstore-go rejected a statement
// because its subject does not name the artifact digest (it checks the
// subject after the signature).
func aboutAnotherImage(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "artifact digest") && strings.Contains(msg, "in statement")
}

// keylessAttestationReason says, for a Reason, why a keyless attestation
// did not verify: keylessReason's words, or the classic layer's.
func keylessAttestationReason(k *authority.Keyless, err error) (int, string) {
	var ce *classicError
	if errors.As(err, &ce) {
		return ce.rank, ce.what(kindAttestation)
	}
	var me *bundle.MatchError
	if errors.Is(err, bundle.ErrNotVerified) && !errors.As(err, &me) && !errors.Is(err, bundle.ErrUntrustedCertificate) &&
		!errors.Is(err, bundle.ErrTransparencyLog) && !errors.Is(err, bundle.ErrTimestamp) {
		// sigstore-go checks the subject after the chain, the log entry
		// and the envelope's signature, before the identity.
		if aboutAnotherImage(err) {
			return rankOther, "an attestation certified by TrustRoot " + k.TrustRoot.Name + " is about another image"
		}
		return rankOther, "an attestation did not verify against TrustRoot " + k.TrustRoot.Name
	}
	return keylessReason(k, err)
}
