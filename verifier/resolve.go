package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Resolve returns the digest ref points at, in canonical form. A digest
// reference is returned as is (canonicalized) without registry I/O; a tag
// costs one HEAD (a GET when the registry does not answer HEAD properly),
// and its answer is cached for Options.TagTTL. An image index resolves to
// the index digest, never to a platform child. Concurrent resolutions of
// one tag share one request.
//
// Errors: *UndecidedError for registry trouble; any other error is
// definite (tag not found, access denied, blocked host).
func (v *Verifier) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	c, err := canonical(ref)
	if err != nil {
		return name.Digest{}, err
	}
	if d, ok := c.(name.Digest); ok {
		return d, nil
	}
	tag := c.(name.Tag)
	key := tag.String()
	if d, ok := v.tags.get(key); ok {
		v.opts.Observer.CacheRequest("tag", "hit")
		return d, nil
	}
	v.opts.Observer.CacheRequest("tag", "miss")
	val, err := v.resolves.do(ctx, key, v.opts.Timeout, func(ctx context.Context) (any, error) {
		d, err := v.resolve(ctx, tag)
		if err == nil {
			v.tags.put(key, d)
		}
		if accessDenied(err) {
			v.pullers.renew() // ask the keychain again: credentials may have been fixed
		}
		return d, err
	})
	if err != nil {
		return name.Digest{}, resolveError(tag, err)
	}
	return val.(name.Digest), nil
}

// resolve asks the registry, HEAD first.
func (v *Verifier) resolve(ctx context.Context, tag name.Tag) (name.Digest, error) {
	rt, err := name.NewTag(tag.String(), v.nameOptions(tag)...)
	if err != nil {
		return name.Digest{}, err
	}
	puller := v.pullers.forRepo(rt.Context())
	desc, err := puller.Head(ctx, rt)
	if err != nil && headUnsupported(err) {
		// GET computes the digest from the bytes; the transport fails the
		// read if they disagree with the registry's Docker-Content-Digest.
		got, gerr := puller.Get(ctx, rt)
		if gerr != nil {
			return name.Digest{}, gerr
		}
		desc, err = &got.Descriptor, nil
	}
	if err != nil {
		return name.Digest{}, err
	}
	return name.NewDigest(Repository(tag) + "@" + desc.Digest.String())
}

// headUnsupported reports whether a failed HEAD deserves a GET: the
// registry refused the method or answered without the headers we need.
func headUnsupported(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			return true
		}
		return false
	}
	return !transient(err) && !errors.Is(err, errBlocked)
}

// resolveError classifies a resolution failure once.
func resolveError(tag name.Tag, err error) error {
	switch {
	case transient(err):
		return &UndecidedError{Op: "resolve", Ref: tag.String(), Err: err}
	case notFound(err):
		return fmt.Errorf("resolve %s: tag not found in the registry: %w", tag, err)
	case accessDenied(err):
		return fmt.Errorf("resolve %s: the registry denied signgate read access; give the gate credentials that can read %s: %w", tag, tag.Context(), err)
	default:
		return fmt.Errorf("resolve %s: %w", tag, err)
	}
}
