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
// AuthoritySet and get a Result or a typed error. Every outcome of Verify
// is one of three: verified (Result), definitely not verified
// (*NotVerifiedError) or undecided (*UndecidedError, transient, never
// cached). Resolve answers a digest, an *UndecidedError, or a definite
// *NotFoundError (404), *AccessDeniedError (401/403), *RefusedError (one of
// the verifier's own rules) or *AnswerError (any other answer).
//
// Registry errors are classified once, here: callers tell outcomes apart
// with errors.As on these types, never by inspecting transport errors.
// Every type wraps the underlying error (Unwrap) for logs, whose text may
// carry what a registry or token service sent; its Problem method returns
// only the verifier's own words, which callers may show to users.
package verifier
