package verifier

import "github.com/google/go-containerregistry/pkg/name"

// FlightWaiters returns how many callers wait on the running verification
// of d for set (0 when none runs), so that tests can wait for callers to
// have joined a shared verification instead of guessing a delay.
func FlightWaiters(v *Verifier, d name.Digest, set AuthoritySet) int {
	d, err := canonicalDigest(d)
	if err != nil {
		return 0
	}
	return v.flights.waiters(verdictKey(d, set.Fingerprint()))
}

// ResolveWaiters is FlightWaiters for the running resolution of tag.
func ResolveWaiters(v *Verifier, tag name.Tag) int {
	c, err := canonical(tag)
	if err != nil {
		return 0
	}
	return v.resolves.waiters(c.String())
}

func (f *flightGroup) waiters(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.calls[key]; c != nil {
		return c.waiters
	}
	return 0
}

// Canonical exposes canonical, the verifier's one canonicalization of a
// reference (fast path included), to tests.
var Canonical = canonical

// BytesInFlight returns the response bytes reserved now from the
// Options.MaxBytesInFlight budget.
func BytesInFlight(v *Verifier) int64 { return v.budget.inUse.Load() }

// VerificationsWaiting returns how many verifications wait for one of the
// Options.MaxConcurrentVerifications slots.
func VerificationsWaiting(v *Verifier) int64 { return v.waiting.Load() }
