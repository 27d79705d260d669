package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/authority"
)

var errNoVerifier = errors.New("no verifier for this key")

// maxDetails bounds the per-signature lines kept in a NotVerifiedError.
const maxDetails = 10

// keyAuthority is one distinct key.
type keyAuthority struct {
	id        string
	verifiers []signature.Verifier
}

// attested is what an authority id must also show: its required
// attestations (the same for every authority of the id, NewSet checks)
// and the name reasons give it.
type attested struct {
	name      string
	reqs      []*attestation.Requirement
	verifiers []signature.Verifier // nil for a keyless authority
	keyless   *authority.Keyless   // nil for a key authority
}

// keylessAuthority is one distinct keyless authority (trust root,
// identities, extensions).
type keylessAuthority struct {
	id string
	k  *authority.Keyless
}

// tally collects what one verification found.
type tally struct {
	threshold  int
	keys       []*keyAuthority
	keyless    []*keylessAuthority
	ok         map[string]bool     // authorities (by id) that verified
	signers    map[string][]string // authority id -> signers that verified it (a key is its own signer)
	counted    int                 // distinct signers matched to distinct authorities (countSigners)
	identity   string              // Reason detail: why keyless authorities did not verify
	idRank     int                 // ... how telling it is (keylessRank)
	signatures int
	details    []string
	unread     bool            // some signatures could not be read (definite)
	denied     bool            // ... because the registry answered 401/403
	refused    *RefusedError   // ... first because of one of the verifier's own rules
	byClassic  bool            // a classic signature verified
	byBundle   bool            // a bundle verified
	trouble    *UndecidedError // first transient failure
	oversized  string          // Reason: a signature manifest or referrers index was over its cap
	// Attestations: what each authority id requiring them must show, how
	// they are checked (set by verify; reads the .att tag lazily) and the
	// outcome per id ("" = satisfied), checked once per verification when
	// a signature of the id first verifies.
	attest       map[string]*attested
	checkAttest  func(id string, a *attested) (reason string, ok bool)
	attestResult map[string]string
	attestReason string // Reason: the first authority whose signature verified without its attestations
}

func newTally(set AuthoritySet) (*tally, error) {
	t := &tally{threshold: set.Threshold(), ok: make(map[string]bool), signers: make(map[string][]string)}
	byID := make(map[string]bool)
	for id, a := range set.All() {
		if byID[id] {
			continue
		}
		byID[id] = true
		if len(a.Attestations) > 0 {
			if t.attest == nil {
				t.attest, t.attestResult = make(map[string]*attested), make(map[string]string)
			}
			t.attest[id] = &attested{name: a.Name, reqs: a.Attestations}
		}
		if a.Keyless != nil {
			t.keyless = append(t.keyless, &keylessAuthority{id: id, k: a.Keyless})
			if at := t.attest[id]; at != nil {
				at.keyless = a.Keyless
			}
			continue
		}
		vs, err := verifiers(a.Key)
		if err != nil {
			return nil, fmt.Errorf("authority %q: %w", a.Name, err)
		}
		k := &keyAuthority{id: id, verifiers: vs}
		t.keys = append(t.keys, k)
		if at := t.attest[id]; at != nil {
			at.verifiers = vs
		}
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

func (t *tally) done() bool { return t.counted >= t.threshold }

func (t *tally) pending() []*keyAuthority {
	var p []*keyAuthority
	for _, k := range t.keys {
		if !t.ok[k.id] {
			p = append(p, k)
		}
	}
	return p
}

// check counts one signature, named by what, against every authority that
// has not verified yet, in either layout: try checks it with one of an
// authority's verifiers, and an authority verifies when any of them
// succeeds. The first failure is recorded as why the signature did not
// count. It reports whether an authority verified.
func (t *tally) check(what string, try func(signature.Verifier) error) bool {
	t.signatures++
	verified := false
	var firstErr error
	for _, a := range t.pending() {
		err := errNoVerifier
		for _, sv := range a.verifiers {
			if err = try(sv); err == nil {
				break
			}
		}
		if err == nil {
			if t.verified(a) {
				verified = true
			}
		} else if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		t.reject(what, firstErr)
	}
	return verified
}

func (t *tally) verified(k *keyAuthority) bool { return t.credit(k.id, "key\x00"+k.id) }

// pendingKeyless returns the keyless authorities that have not verified
// yet.
func (t *tally) pendingKeyless() []*keylessAuthority {
	var p []*keylessAuthority
	for _, k := range t.keyless {
		if !t.ok[k.id] {
			p = append(p, k)
		}
	}
	return p
}

// newSigner reports whether signer has not been credited to any
// authority yet.
func (t *tally) newSigner(signer string) bool {
	for _, ss := range t.signers {
		if slices.Contains(ss, signer) {
			return false
		}
	}
	return true
}

// credit records that signer verified authority id and recounts, unless
// the authority requires attestations that are not satisfied (attested).
// It reports whether the authority was credited.
func (t *tally) credit(id, signer string) bool {
	if !t.attestedOK(id) {
		return false
	}
	t.ok[id] = true
	if !slices.Contains(t.signers[id], signer) {
		t.signers[id] = append(t.signers[id], signer)
	}
	t.counted = countSigners(t.signers)
	return true
}

// attestedOK reports whether authority id's required attestations (if
// any) are satisfied, checking them the first time a signature of id
// verifies. A failure is noted as the Reason unless an earlier one was; a
// read failure (ok false from checkAttest) was recorded by checkAttest
// and is not cached as a verdict of the attestations.
func (t *tally) attestedOK(id string) bool {
	a := t.attest[id]
	if a == nil {
		return true
	}
	if reason, done := t.attestResult[id]; done {
		return reason == ""
	}
	if t.checkAttest == nil {
		t.attestResult[id] = "attestations are not checked"
		return false
	}
	reason, ok := t.checkAttest(id, a)
	if !ok {
		t.attestResult[id] = "attestations could not be read"
		return false
	}
	t.attestResult[id] = reason
	if reason != "" && t.attestReason == "" {
		t.attestReason = reason
	}
	return reason == ""
}

// keylessSigner is the signer a keyless verification counts as: the
// certificate's subject and issuer.
func keylessSigner(subject, issuer string) string {
	return "keyless\x00" + issuer + "\x00" + subject
}

// countSigners is the threshold count: the largest number of authorities
// that can each be given a signer of its own (a maximum bipartite
// matching, by augmenting paths; sets are small). Two authorities
// satisfied only by the same signer count once.
func countSigners(signers map[string][]string) int {
	owner := make(map[string]string) // signer -> authority id
	var try func(id string, seen map[string]bool) bool
	try = func(id string, seen map[string]bool) bool {
		for _, s := range signers[id] {
			if seen[s] {
				continue
			}
			seen[s] = true
			if o, ok := owner[s]; !ok || try(o, seen) {
				owner[s] = id
				return true
			}
		}
		return false
	}
	n := 0
	for _, id := range slices.Sorted(maps.Keys(signers)) {
		if try(id, make(map[string]bool)) {
			n++
		}
	}
	return n
}

// keylessRank orders why a keyless authority did not verify, most telling
// first kept: a verified certificate of the wrong identity, then an
// untrusted certificate, then the rest.
const (
	rankOther = iota + 1
	rankUnlogged
	rankUntrusted
	rankIdentity
)

// keylessFailed notes why a keyless authority did not verify (reason is
// short and safe to show) unless a more telling reason is known.
func (t *tally) keylessFailed(rank int, reason string) {
	if rank > t.idRank {
		t.idRank, t.identity = rank, reason
	}
}

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
		// The registry's words are not repeated: a denial's body is the
		// registry's to say, not the tenant's to read.
		t.denied, t.unread = true, true
		t.reject(what, fmt.Errorf("denied (HTTP %d)", c.StatusCode))
		return
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
		for _, k := range t.keyless {
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
	case t.attestReason != "":
		nv.Reason, nv.Attestation = t.attestReason, true
	case len(t.ok) == 0 && t.identity != "" && len(t.keys) > 0:
		nv.Reason = "no valid signature from a trusted key or identity: " + t.identity
	case len(t.ok) == 0 && t.identity != "":
		nv.Reason = "no valid signature from a trusted identity: " + t.identity
	case len(t.ok) == 0 && len(t.keys) == 0:
		nv.Reason = "no valid signature from a trusted identity"
	case len(t.ok) == 0:
		nv.Reason = "no valid signature from a trusted key"
	case t.counted < len(t.ok):
		nv.Reason = fmt.Sprintf("only %d of the %d required authorities verified (authorities satisfied by the same certificate identity count once)", t.counted, t.threshold)
	default:
		nv.Reason = fmt.Sprintf("only %d of the %d required authorities verified", t.counted, t.threshold)
	}
	return nil, nv
}

// capped notes the signatures beyond the first limit of total, which
// were not read.
func capped(total, limit int, t *tally) {
	if total > limit {
		t.reject("limit", fmt.Errorf("%d signatures beyond the first %d were ignored", total-limit, limit))
	}
}
