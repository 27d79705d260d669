package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature"
)

var errNoVerifier = errors.New("no verifier for this key")

// maxDetails bounds the per-signature lines kept in a NotVerifiedError.
const maxDetails = 10

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
			t.verified(a)
			verified = true
		} else if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		t.reject(what, firstErr)
	}
	return verified
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

// capped notes the signatures beyond the first limit of total, which
// were not read.
func capped(total, limit int, t *tally) {
	if total > limit {
		t.reject("limit", fmt.Errorf("%d signatures beyond the first %d were ignored", total-limit, limit))
	}
}
