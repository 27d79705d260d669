package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/imageref"
)

// Mirror is a registry the verifier reads another registry's
// repositories from (Options.Mirrors), as containerd's hosts.toml mirrors
// do for nodes: repository path p of the mirrored registry is read as
// Host/Prefix/p (Host/p without a prefix).
type Mirror struct {
	Host   string // host[:port]
	Prefix string // path prefix, "" for none
}

func (m Mirror) String() string {
	if m.Prefix == "" {
		return m.Host
	}
	return m.Host + "/" + m.Prefix
}

// ParseMirror parses a mirror written "host[:port][/path prefix]", e.g.
// "mirror.corp.example/dockerhub".
func ParseMirror(s string) (Mirror, error) {
	host, prefix, err := imageref.ParseMirror(s)
	if err != nil {
		return Mirror{}, err
	}
	return Mirror{Host: host, Prefix: prefix}, nil
}

// checkMirrors returns ms with canonical keys (index.docker.io for
// docker.io) and hosts, or what is wrong with it: a key that is not a
// registry host, two keys for one registry, an empty list, a mirror that
// is not host[:port][/path prefix], is its registry itself, is listed
// twice, or has mirrors of its own (mirrors are not chained).
func checkMirrors(ms map[string][]Mirror) (map[string][]Mirror, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(ms))
	for k := range ms {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string][]Mirror, len(ms))
	written := make(map[string]string, len(ms)) // canonical key → key as written
	var errs []error
	for _, k := range keys {
		if err := imageref.CheckHost(k); err != nil {
			errs = append(errs, fmt.Errorf("mirrors of %q: the key must be a registry host[:port] as in an image reference, e.g. docker.io: %w", k, err))
			continue
		}
		reg := imageref.Host(k)
		if prev, ok := written[reg]; ok {
			errs = append(errs, fmt.Errorf("mirrors of %q: %q names the same registry (%s); list its mirrors once", k, prev, reg))
			continue
		}
		written[reg] = k
		if len(ms[k]) == 0 {
			errs = append(errs, fmt.Errorf("mirrors of %q: empty list; list at least one mirror or remove the key", k))
			continue
		}
		var list []Mirror
		for _, m := range ms[k] {
			pm, err := ParseMirror(m.String())
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("mirrors of %q: %w", k, err))
				continue
			case pm.Host == reg && pm.Prefix == "":
				errs = append(errs, fmt.Errorf("mirrors of %q: mirror %q is the registry itself; it is always tried last, so remove it from the list", k, m))
				continue
			case slices.Contains(list, pm):
				errs = append(errs, fmt.Errorf("mirrors of %q: mirror %q is listed twice; list it once", k, m))
				continue
			}
			list = append(list, pm)
		}
		out[reg] = list
	}
	for _, k := range keys {
		for _, m := range out[imageref.Host(k)] {
			if to, ok := written[m.Host]; ok && m.Host != imageref.Host(k) {
				errs = append(errs, fmt.Errorf("mirrors of %q: mirror %q has mirrors of its own (key %q); mirrors are not chained, so list the mirrors to try under %q directly", k, m, to, k))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// fromMirrors calls read for ref's registry reads: with ref rewritten to
// each mirror of its registry (Options.Mirrors) in order, then with ref
// itself, until one succeeds or fails in a way another source would not
// change (see mirrorFallback). The error is the last source's: the
// original registry's when every mirror failed. Only the reads move: ref,
// and everything built from it (cache and flight keys, verdicts, claims,
// messages) stays the original. What a mirror returns by digest is checked
// against the digest as any registry's answer is (go-containerregistry
// hashes manifests and blobs fetched by digest); a tag a mirror resolves
// is that mirror's answer.
//
// A mirror is read with the gate's own credentials (Options.Keychain, for
// the mirror's host), never with a caller's Credential, which was given
// for the original registry.
func (v *Verifier) fromMirrors(ctx context.Context, ref name.Reference, read func(ctx context.Context, ref name.Reference) error) error {
	ms := v.opts.Mirrors[ref.Context().RegistryStr()]
	if len(ms) == 0 {
		return read(ctx, ref)
	}
	shared := context.WithValue(ctx, accessKey{}, access{pullers: v.pullers})
	for _, m := range ms {
		mref, err := v.mirrored(ref, m)
		if err == nil {
			err = read(shared, mref)
		}
		if err == nil {
			return nil
		}
		if !mirrorFallback(ctx, err) {
			return &mirrorError{mirror: m.String(), ref: ref.String(), err: err}
		}
	}
	return read(ctx, ref)
}

// mirrored is ref in the repository mirror m serves it under.
func (v *Verifier) mirrored(ref name.Reference, m Mirror) (name.Reference, error) {
	path := ref.Context().RepositoryStr()
	if m.Prefix != "" {
		path = m.Prefix + "/" + path
	}
	if err := imageref.Check(m.Host, path); err != nil {
		return nil, err
	}
	opts := v.hostOptions(m.Host)
	switch r := ref.(type) {
	case name.Digest:
		return name.NewDigest(m.Host+"/"+path+"@"+r.DigestStr(), opts...)
	case name.Tag:
		return name.NewTag(m.Host+"/"+path+":"+r.TagStr(), opts...)
	default:
		return nil, fmt.Errorf("reference %q: neither tag nor digest", ref)
	}
}

// mirrorFallback reports whether, after a mirror failed with err, the
// next mirror (or the original registry) should be asked: the mirror was
// unreachable, answered 5xx, 429 or 408, did not have what was asked
// (404) or denied access (401, 403). Not when ctx ended (there is no time
// left for another), nor when one of the verifier's own rules refused
// the mirror (network guard, plain HTTP, a body too large or not matching
// its digest, a token realm not allowed): that is reported, naming the
// mirror, rather than silently read around.
func mirrorFallback(ctx context.Context, err error) bool {
	if ctx.Err() != nil || ruleProblem(err) != "" || errors.Is(err, errInternal) {
		return false
	}
	switch statusCode(err) {
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return transient(err)
}

// hostOptions mark host as insecure for the registry client when it is
// listed in Options.InsecureRegistries.
func (v *Verifier) hostOptions(host string) []name.Option {
	if v.insecure[strings.ToLower(host)] {
		return []name.Option{name.Insecure}
	}
	return nil
}

// mirrorError is a mirror's failure that ended a read (see
// mirrorFallback). It is classified as err is; a rule's phrase names the
// mirror (mirrorRule), since the registry the caller names is not the
// host that was refused.
type mirrorError struct {
	mirror string // as configured: host[:port][/prefix]
	ref    string // the original reference
	err    error
}

func (e *mirrorError) Error() string {
	return fmt.Sprintf("read %s from mirror %s: %v", e.ref, e.mirror, e.err)
}

func (e *mirrorError) Unwrap() error { return e.err }

// mirrorRule is rule (ruleProblem's phrase about "it", the registry)
// said of the mirror that was refused.
func mirrorRule(mirror, rule string) string {
	if rest, ok := strings.CutPrefix(rule, "it "); ok {
		return "its mirror " + mirror + " " + rest
	}
	return "its mirror " + mirror + ": " + rule
}
