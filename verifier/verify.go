package verifier

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Result is a successful verification.
type Result struct {
	Digest   name.Digest
	Verified []string // names of the authorities that verified (keys or keyless identities), sorted
	Cached   bool     // served from the verdict cache
}

// Verify checks that at least the set's threshold of distinct authorities
// signed d, in either cosign layout: the classic sha256-<hex>.sig tag, and
// sigstore bundles attached as OCI referrers (or the referrers fallback
// tag). Every signature must name d itself (claim check); a signature over
// another digest never counts.
//
// An authority requiring attestations counts only when, besides its
// signature, each requirement is satisfied by an attestation in either
// layout — the classic sha256-<hex>.att tag, or sigstore bundles attached
// as referrers (`cosign attest --new-bundle-format`; the referrers index
// is read at most once per verification, shared with the signatures) —
// read only then, the second layout only when the first did not satisfy
// every requirement: signed by the authority (its key, or for a keyless
// authority a certificate of its TrustRoot and identities), of the
// predicate type the signed statement names (never an annotation's),
// about d, whose condition holds. A failure is a *NotVerifiedError with
// Attestation set.
//
// Definite answers are cached under (canonical repository, digest,
// set.Fingerprint()); concurrent calls for one key share one verification,
// which runs on its own deadline (Options.Timeout) so that one impatient
// caller cannot fail the others.
//
// Errors: *NotVerifiedError (definite) or *UndecidedError (transient).
func (v *Verifier) Verify(ctx context.Context, d name.Digest, set AuthoritySet) (Result, error) {
	return v.VerifyWith(ctx, d, set, nil)
}

// VerifyWith is Verify reading the registry with cred ahead of the gate's
// own credentials (nil: the gate's own only). What cred's credentials
// for the digest's registry learn is cached for them alone; a registry
// they have nothing for is read, and cached, as Verify does. An access
// denied with cred's credentials says so (NotVerifiedError.Credential).
func (v *Verifier) VerifyWith(ctx context.Context, d name.Digest, set AuthoritySet, cred *Credential) (Result, error) {
	q, res, known, err := v.lookup(d, set, cred)
	if known {
		return res, err
	}
	v.opts.Observer.CacheRequest("verdict", "miss")
	d = q.digest
	val, err := v.flights.do(ctx, q.key, v.opts.Timeout, func(ctx context.Context) (any, error) {
		// A flight for the same key may have stored its verdict and ended
		// between the look-up above and this one starting: use it rather
		// than verify the digest a second time.
		if vd, ok := v.verdicts.get(q.key); ok {
			if vd.err != nil {
				return nil, vd.err.clone()
			}
			return vd.verified, nil
		}
		if err := v.acquireSlot(ctx); err != nil {
			return nil, undecided("verify", d.String(), err) // not run: neither cached nor counted
		}
		defer v.running.Release(1)
		verified, err := v.verify(withAccess(ctx, q.acc), d, set)
		if nv := (*NotVerifiedError)(nil); errors.As(err, &nv) && nv.AccessDenied {
			nv.Credential = q.acc.name
			q.acc.pullers.renew() // ask the keychain again: credentials may have been fixed
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
	return v.CachedWith(d, set, nil)
}

// CachedWith is Cached for VerifyWith(d, set, cred).
func (v *Verifier) CachedWith(d name.Digest, set AuthoritySet, cred *Credential) (res Result, ok bool, err error) {
	_, res, ok, err = v.lookup(d, set, cred)
	return res, ok, err
}

// query is a verification after the checks and look-ups that need no I/O.
type query struct {
	digest name.Digest // canonical
	key    string      // verdict cache key, within acc's scope
	acc    access      // how the registry is read
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
func (v *Verifier) lookup(d name.Digest, set AuthoritySet, cred *Credential) (q query, res Result, known bool, err error) {
	d, err = canonicalDigest(d)
	if err != nil {
		return q, Result{}, true, fmt.Errorf("verify %s: %w", d, err)
	}
	if set.Len() == 0 {
		return q, Result{}, true, &NotVerifiedError{Digest: d, Reason: "invalid authority set: no authorities (build sets with NewAuthoritySet)"}
	}
	acc, err := v.access(context.Background(), cred, d.Context())
	if err != nil {
		return q, Result{}, true, undecided("verify", d.String(), err)
	}
	q = query{digest: d, key: scoped(verdictKey(d, set.Fingerprint()), acc), acc: acc}
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
	refs := v.newReferrers(ctx, rd)
	if set.Attested() {
		att := v.newAttestations(ctx, d, rd, h, refs)
		t.checkAttest = func(id string, a *attested) (string, bool) { return att.check(t, id, a) }
	}
	layouts := []func(context.Context, name.Digest, v1.Hash, *tally){
		v.verifyClassic,
		func(ctx context.Context, _ name.Digest, h v1.Hash, t *tally) { v.verifyBundles(ctx, refs, h, t) },
	}
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
