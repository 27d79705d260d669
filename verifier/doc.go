// Package verifier turns image references into verified digests.
//
// It canonicalizes references, resolves tags to digests against OCI
// registries, fetches cosign signatures (the classic sha256-<hex>.sig tag and
// the bundle format found through the OCI referrers API) and checks them
// against a set of public-key authorities with a threshold. Verdicts are kept
// in a bounded LRU cache keyed by repository, digest and the fingerprint of
// the authority set; concurrent misses share one verification.
//
// The package knows nothing of pods, namespaces or policies: callers pass an
// AuthoritySet and get a Result or a typed error. Every outcome is one of
// three: verified (Result), definitely not verified (*NotVerifiedError) or
// undecided (*UndecidedError, transient, never cached).
package verifier
