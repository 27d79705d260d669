package verifier

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Resolve returns the digest ref points at, in canonical form. A digest
// reference is returned as is (canonicalized) without registry I/O; a tag
// costs one HEAD (a GET when the registry does not answer HEAD properly),
// and its answer is cached for Options.TagTTL. An image index resolves to
// the index digest, never to a platform child. Concurrent resolutions of
// one tag share one request.
//
// Errors: *UndecidedError for registry trouble (Reason says which);
// definite: *NotFoundError (404), *AccessDeniedError (401/403),
// *RefusedError (one of the verifier's own rules: blocked network, plain
// HTTP, too large, digest mismatch, ...), *AnswerError (any other answer),
// or an error for a reference that is not valid.
func (v *Verifier) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	return v.ResolveWith(ctx, ref, nil)
}

// ResolveWith is Resolve reading the registry with cred ahead of the
// gate's own credentials (nil: the gate's own only); a tag resolved with
// cred's credentials is cached for them alone, as VerifyWith's verdicts
// are. An access denied with them says so (AccessDeniedError.Credential).
func (v *Verifier) ResolveWith(ctx context.Context, ref name.Reference, cred *Credential) (name.Digest, error) {
	c, err := canonical(ref)
	if err != nil {
		return name.Digest{}, err
	}
	if d, ok := c.(name.Digest); ok {
		return d, nil
	}
	tag := c.(name.Tag)
	acc, err := v.access(ctx, cred, tag.Context())
	if err != nil {
		return name.Digest{}, undecided("resolve", tag.String(), err)
	}
	key := scoped(tag.String(), acc)
	if d, ok := v.tags.get(key); ok {
		v.opts.Observer.CacheRequest("tag", "hit")
		return d, nil
	}
	v.opts.Observer.CacheRequest("tag", "miss")
	val, err := v.resolves.do(ctx, key, v.opts.Timeout, func(ctx context.Context) (any, error) {
		d, err := v.resolve(withAccess(ctx, acc), tag)
		if err == nil {
			v.tags.put(key, d)
		}
		if accessDenied(err) {
			acc.pullers.renew() // ask the keychain again: credentials may have been fixed
		}
		return d, err
	})
	if err != nil {
		err = resolveError(tag, err)
		if ad := (*AccessDeniedError)(nil); errors.As(err, &ad) {
			ad.Credential = acc.name
		}
		return name.Digest{}, err
	}
	return val.(name.Digest), nil
}

// ResolveCached returns what Resolve would answer without registry I/O:
// the digest of a digest reference, or of a tag whose digest is cached
// (counted as a tag cache hit, as Resolve counts it). ok is false when
// only Resolve can answer: a tag not cached, or an invalid reference.
// It lets a caller with many references resolve the cached ones on its
// own goroutine and start goroutines only for the rest.
func (v *Verifier) ResolveCached(ref name.Reference) (d name.Digest, ok bool) {
	return v.ResolveCachedWith(ref, nil)
}

// ResolveCachedWith is ResolveCached for ResolveWith(ref, cred).
func (v *Verifier) ResolveCachedWith(ref name.Reference, cred *Credential) (d name.Digest, ok bool) {
	if d, ok := ref.(name.Digest); ok {
		d, err := canonicalDigest(d) // no parsing when d is canonical already
		return d, err == nil
	}
	c, err := canonical(ref)
	if err != nil {
		return name.Digest{}, false
	}
	if d, ok := c.(name.Digest); ok {
		return d, true
	}
	tag := c.(name.Tag)
	acc, err := v.access(context.Background(), cred, tag.Context())
	if err != nil {
		return name.Digest{}, false
	}
	if d, ok = v.tags.get(scoped(tag.String(), acc)); ok { // Resolve's key
		v.opts.Observer.CacheRequest("tag", "hit")
	}
	return d, ok
}

// resolve asks the registry, HEAD first.
func (v *Verifier) resolve(ctx context.Context, tag name.Tag) (name.Digest, error) {
	rt, err := name.NewTag(tag.String(), v.nameOptions(tag)...)
	if err != nil {
		return name.Digest{}, err
	}
	var desc *v1.Descriptor
	err = v.fromMirrors(ctx, rt, func(ctx context.Context, ref name.Reference) (err error) {
		desc, err = v.head(ctx, ref.(name.Tag))
		return err
	})
	if err != nil {
		return name.Digest{}, err
	}
	// The digest names the original repository, whichever source answered.
	return name.NewDigest(canonicalRepository(tag.Context()) + "@" + desc.Digest.String())
}

// head asks one registry (or mirror) for rt's descriptor, HEAD first.
func (v *Verifier) head(ctx context.Context, rt name.Tag) (*v1.Descriptor, error) {
	puller := v.pullersFor(ctx).forRepo(rt.Context())
	probe := &headProbe{}
	desc, err := puller.Head(context.WithValue(ctx, headProbeKey{}, probe), rt)
	if err != nil && headUnsupported(int(probe.status.Load())) {
		// GET computes the digest from the bytes; the transport fails the
		// read if they disagree with the registry's Docker-Content-Digest.
		got, gerr := puller.Get(ctx, rt)
		if gerr != nil {
			return nil, gerr
		}
		desc, err = &got.Descriptor, nil
	}
	return desc, err
}

// headProbe records the status of the manifest HEAD a resolution sent
// (registryTransport.RoundTrip fills it in; 0: no answer arrived, e.g.
// the ping, the token exchange or the connection failed first).
type headProbe struct{ status atomic.Int32 }

type headProbeKey struct{}

// recordHead notes the status of a manifest HEAD in the request's probe.
func recordHead(req *http.Request, op string, status int) {
	if req.Method != http.MethodHead || op != "manifest" {
		return
	}
	if p, ok := req.Context().Value(headProbeKey{}).(*headProbe); ok {
		p.status.Store(int32(status))
	}
}

// headUnsupported reports whether a failed HEAD that got status deserves
// a GET: the registry refused the method (400, 405, 501) or answered 2xx
// without the headers we need. Nothing else does: not a 404 (the tag is
// missing), not 401/403 or 5xx (a GET gets the same answer), not a failure
// before the HEAD was answered (network, ping, token exchange, a rule of
// the transport), which a GET would only repeat.
func headUnsupported(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return status >= 200 && status < 300
}

// resolveError classifies a resolution failure (see classify).
func resolveError(tag name.Tag, err error) error {
	return classify("resolve", tag.String(), err)
}
