package audit

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/time/rate"

	"github.com/signgate/signgate/verifier"
)

// Throttled is the webhooks' verifier as the background audit uses it:
// the same caches and in-flight lookups (an image admission verified
// costs a scan nothing, and the other way round), but every lookup the
// caches cannot answer first waits for a token of Limit, so a rescan
// after a policy change reaches the registries at a steady rate instead
// of all at once. Admission is never throttled: it uses the verifier
// itself.
type Throttled struct {
	V     *verifier.Verifier
	Limit *rate.Limiter
}

// NewThrottled allows perSecond registry lookups with bursts of burst.
func NewThrottled(v *verifier.Verifier, perSecond float64, burst int) *Throttled {
	return &Throttled{V: v, Limit: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))}
}

// wait takes a token; a context that ends first makes the lookup
// undecided, as a registry that does not answer in time would.
func (t *Throttled) wait(ctx context.Context, op, ref string) error {
	if err := t.Limit.Wait(ctx); err != nil {
		return &verifier.UndecidedError{Op: op, Ref: ref, Reason: "timed out", Err: err}
	}
	return nil
}

func (t *Throttled) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	return t.ResolveWith(ctx, ref, nil)
}

func (t *Throttled) Verify(ctx context.Context, d name.Digest, set verifier.AuthoritySet) (verifier.Result, error) {
	return t.VerifyWith(ctx, d, set, nil)
}

func (t *Throttled) ResolveCached(ref name.Reference) (name.Digest, bool) {
	return t.V.ResolveCached(ref)
}

func (t *Throttled) Cached(d name.Digest, set verifier.AuthoritySet) (verifier.Result, bool, error) {
	return t.V.Cached(d, set)
}

func (t *Throttled) ResolveWith(ctx context.Context, ref name.Reference, cred *verifier.Credential) (name.Digest, error) {
	if _, ok := t.V.ResolveCachedWith(ref, cred); !ok {
		if err := t.wait(ctx, "resolve", ref.String()); err != nil {
			return name.Digest{}, err
		}
	}
	return t.V.ResolveWith(ctx, ref, cred)
}

func (t *Throttled) VerifyWith(ctx context.Context, d name.Digest, set verifier.AuthoritySet, cred *verifier.Credential) (verifier.Result, error) {
	if _, ok, _ := t.V.CachedWith(d, set, cred); !ok {
		if err := t.wait(ctx, "verify", d.String()); err != nil {
			return verifier.Result{}, err
		}
	}
	return t.V.VerifyWith(ctx, d, set, cred)
}

func (t *Throttled) ResolveCachedWith(ref name.Reference, cred *verifier.Credential) (name.Digest, bool) {
	return t.V.ResolveCachedWith(ref, cred)
}

func (t *Throttled) CachedWith(d name.Digest, set verifier.AuthoritySet, cred *verifier.Credential) (verifier.Result, bool, error) {
	return t.V.CachedWith(d, set, cred)
}
