package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// imageCheck is one (image, policy requirement) pair to verify, or, with
// no requirement, an unpinned pod image whose tag is resolved only to tell
// a registry outage (undecided, retry) from a missing mutating webhook.
type imageCheck struct {
	field policy.ImageField
	ref   name.Reference
	req   *policy.Requirement // nil: resolution probe
	// key identifies the work: the same canonical reference under the same
	// policy is verified once per review.
	key string
}

// checked is the outcome of one verification.
type checked struct {
	result verifier.Result
	err    error
	// offline: not checked, the gate contacts no registry
	// (Options.Offline).
	offline bool
}

// images checks every image of the pod: a valid reference, pinned by digest
// (pods; templates are resolved here since they are only pinned on
// request), and verified against every requirement that applies to it in
// the namespace. Verdicts the verifier has cached are taken on this
// goroutine; workers start only for the rest, so a review whose verdicts
// are all cached starts none.
func (e *evaluation) images(ctx context.Context, fields []policy.ImageField) {
	var checks []imageCheck
	for _, f := range fields {
		checks = append(checks, e.imageChecks(f)...)
	}
	index := map[string]int{}
	var results []checked
	var misses []int // indexes into results of the tasks
	var tasks []func(context.Context) checked
	for _, c := range checks {
		if _, ok := index[c.key]; ok {
			continue
		}
		index[c.key] = len(results)
		var set verifier.AuthoritySet
		if c.req != nil {
			set = c.req.Authorities // built once, when the policy was compiled
		}
		r, ok := e.cached(&c, set)
		if !ok {
			misses = append(misses, len(results))
			tasks = append(tasks, e.verifyTask(c, set))
		}
		results = append(results, r)
	}
	for i, r := range runBounded(ctx, e.gate.concurrency, tasks, func(err error) checked { return checked{err: err} }) {
		results[misses[i]] = r
	}
	for _, c := range checks {
		e.judge(c, results[index[c.key]])
	}
}

// cached returns the outcome of c when it is known without registry I/O:
// offline, not checked; otherwise a cached verdict of the verifier, for a
// template's tag a cached digest too. ok is false when c needs a worker; a tag resolved from the cache is
// then replaced by its digest in c, so the worker does not resolve again.
func (e *evaluation) cached(c *imageCheck, set verifier.AuthoritySet) (r checked, ok bool) {
	if e.gate.offline { // known without registry I/O: not checked
		return checked{offline: true}, true
	}
	if c.req == nil || e.reads.cached == nil {
		return checked{}, false
	}
	d, ok := c.ref.(name.Digest)
	if !ok {
		if d, ok = e.reads.cached.ResolveCached(c.ref); !ok {
			return checked{}, false
		}
		c.ref = d
	}
	r.result, ok, r.err = e.reads.cached.Cached(d, set)
	return r, ok
}

// imageChecks returns the verifications one image needs, recording the
// problems found without any registry I/O. Field paths are built only for
// the lines written: an admitted image needs none.
func (e *evaluation) imageChecks(f policy.ImageField) []imageCheck {
	if f.Image == "" {
		path := f.Path(e.pod.Prefix)
		e.f.record(SeverityDeny, "", Finding{Code: CodeImageEmpty, Field: path, Message: path + ": image is empty; set an image reference"})
		return nil
	}
	parsed := e.gate.refs.parse(f.Image)
	ref := parsed.ref
	if parsed.err != nil {
		path := f.Path(e.pod.Prefix)
		e.f.record(SeverityDeny, "", Finding{Code: CodeImageInvalid, Field: path, Image: f.Image,
			Message: fmt.Sprintf("%s %q: not a valid image reference (want host/repository[:tag]@sha256:<64 hex digits>); fix the image name", path, f.Image)})
		return nil
	}
	if _, pinned := ref.(name.Digest); !pinned && !e.pod.Workload && !e.gate.offline {
		return []imageCheck{{field: f, ref: ref, key: parsed.name}}
	}
	reqs := e.snap.Requirements(e.req.Namespace, e.labels, parsed.repo)
	if !e.cfg.Covers(reqs) {
		// ImagePolicies that match still add their requirements below.
		e.unmatched(f, parsed.repo, len(reqs) > 0)
	}
	var checks []imageCheck
	for i := range reqs {
		r := &reqs[i]
		switch {
		case r.Err != nil:
			path := f.Path(e.pod.Prefix)
			e.f.record(SeverityDeny, "", e.about(CodePolicyInvalid, path, f.Image, r,
				fmt.Sprintf("%s %q: %s; fix the policy", path, f.Image, oneLine(r.Err.Error()))))
		case r.Static == policy.StaticPass:
		case r.Static == policy.StaticFail:
			path := f.Path(e.pod.Prefix)
			e.f.add(r.Mode, auditImagePolicy, e.about(CodeStaticFail, path, f.Image, r,
				fmt.Sprintf("%s %q: rejected by %s (static fail)", path, f.Image, r.Policy)))
		default:
			checks = append(checks, imageCheck{field: f, ref: ref, req: r, key: parsed.name + "\x00" + r.Policy})
		}
	}
	return checks
}

// unpinned denies a pod image without a digest. When its tag cannot be
// resolved because of registry trouble the mutating webhook could not have
// pinned it either: that is undecided, and says retry.
func (e *evaluation) unpinned(path, image, registry string, resolveErr error) {
	if resolveErr != nil && isTransient(resolveErr) {
		e.f.record(SeverityRetry, "", Finding{Code: CodeImageUnpinned, Field: path, Image: image,
			Message: fmt.Sprintf("%s %q: must be pinned by digest and the tag cannot be resolved now: %s", path, image, e.gate.registryProblem(registry, resolveErr))})
		return
	}
	if refused := (*verifier.RefusedError)(nil); errors.As(resolveErr, &refused) && refused.Kind != "" {
		e.f.record(SeverityDeny, "", Finding{Code: CodeRegistryRefused, Field: path, Image: image,
			Message: fmt.Sprintf("%s %q: must be pinned by digest and the tag cannot be resolved: %s", path, image, e.gate.registryProblem(registry, resolveErr))})
		return
	}
	e.f.record(SeverityDeny, "", Finding{Code: CodeImageUnpinned, Field: path, Image: image,
		Message: fmt.Sprintf("%s %q: must be pinned by digest; write it as repo:tag@sha256:<digest> or make sure signgate's mutating webhook is installed", path, image)})
}

// unmatched applies unmatchedImages to an image no policy covers.
// namespaced says ImagePolicies match it, which do not count as coverage
// without policies.namespacePoliciesCoverImages.
func (e *evaluation) unmatched(f policy.ImageField, repo imageref.Repo, namespaced bool) {
	if e.cfg.UnmatchedImages == policy.UnmatchedAllow {
		return
	}
	path := f.Path(e.pod.Prefix)
	line := fmt.Sprintf("%s %q: no ClusterImagePolicy or ImagePolicy in namespace %s covers %s; add a policy for it or use an image one covers",
		path, f.Image, e.req.Namespace, repo)
	if namespaced {
		line = fmt.Sprintf("%s %q: no ClusterImagePolicy covers %s, and ImagePolicies of namespace %s only add requirements (policies.namespacePoliciesCoverImages is off); "+
			"ask the cluster administrator for a ClusterImagePolicy that covers it, or use an image one covers",
			path, f.Image, repo, e.req.Namespace)
	}
	sev := SeverityDeny
	if e.cfg.UnmatchedImages == policy.UnmatchedWarn {
		sev = SeverityWarn
	}
	e.f.record(sev, "", Finding{Code: CodeImageUnmatched, Field: path, Image: f.Image, Message: line})
}

// verifyTask resolves the reference if needed (templates) and verifies the
// digest against the requirement's authorities.
func (e *evaluation) verifyTask(c imageCheck, set verifier.AuthoritySet) func(context.Context) checked {
	if c.req == nil {
		return func(ctx context.Context) checked {
			d, err := e.reads.verifier.Resolve(ctx, c.ref)
			return checked{result: verifier.Result{Digest: d}, err: err}
		}
	}
	return func(ctx context.Context) checked {
		d, ok := c.ref.(name.Digest)
		if !ok {
			var err error
			if d, err = e.reads.verifier.Resolve(ctx, c.ref); err != nil {
				return checked{err: err}
			}
		}
		res, err := e.reads.verifier.Verify(ctx, d, set)
		return checked{result: res, err: err}
	}
}

// judge records the outcome of one check under its requirement's mode.
func (e *evaluation) judge(c imageCheck, r checked) {
	if c.req == nil {
		e.unpinned(c.field.Path(e.pod.Prefix), c.field.Image, c.ref.Context().RegistryStr(), r.err)
		return
	}
	if r.offline {
		path := c.field.Path(e.pod.Prefix)
		e.f.record(SeverityWarn, "", e.about(CodeOfflineNotVerified, path, c.field.Image, c.req,
			fmt.Sprintf("%s %q: signature not checked against %s (offline)", path, c.field.Image, c.req.Policy)))
		return
	}
	threshold := c.req.Authorities.Threshold()
	if r.err == nil && len(r.result.Verified) >= threshold {
		return
	}
	path := c.field.Path(e.pod.Prefix)
	var notVerified *verifier.NotVerifiedError
	switch {
	case r.err == nil:
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeNotEnoughSignatures, path, c.field.Image, c.req, fmt.Sprintf("%s %q: %s for %s (need %d of: %s; verified: %s); %s",
			path, c.field.Image, "not enough valid signatures", c.req.Policy, threshold, authorityNames(c.req), strings.Join(r.result.Verified, ", "), e.signAdvice(c.req))))
	case errors.As(r.err, &notVerified) && notVerified.AccessDenied:
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeRegistryAccessDenied, path, c.field.Image, c.req, fmt.Sprintf("%s %q: cannot verify against %s: %s",
			path, c.field.Image, c.req.Policy, e.gate.accessDenied(notVerified.Digest.Context().String(), notVerified.Credential))))
	case errors.As(r.err, &notVerified) && notVerified.Refused != nil && notVerified.Refused.Kind == "":
		// A rule no setting lifts (an oversized signature manifest or
		// referrers index): the reason names the response and the limit.
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeRegistryRefused, path, c.field.Image, c.req, fmt.Sprintf("%s %q: cannot verify against %s: %s",
			path, c.field.Image, c.req.Policy, notVerified.Reason)))
	case errors.As(r.err, &notVerified) && notVerified.Refused != nil:
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeRegistryRefused, path, c.field.Image, c.req, fmt.Sprintf("%s %q: cannot verify against %s: %s",
			path, c.field.Image, c.req.Policy, e.gate.registryProblem(c.ref.Context().RegistryStr(), r.err))))
	case errors.As(r.err, &notVerified) && notVerified.Attestation:
		// Signed, but an attestation the authority requires is missing or
		// its condition does not hold: the reason names which and why.
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeAttestation, path, c.field.Image, c.req, fmt.Sprintf("%s %q: %s; required by %s (need %d of: %s)",
			path, c.field.Image, notVerified.Reason, c.req.Policy, threshold, authorityNames(c.req))))
	case errors.As(r.err, &notVerified):
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeNotVerified, path, c.field.Image, c.req, fmt.Sprintf("%s %q: %s for %s (need %d of: %s); %s",
			path, c.field.Image, notVerified.Reason, c.req.Policy, threshold, authorityNames(c.req), e.signAdvice(c.req))))
	case isTransient(r.err):
		d := e.about(CodeRegistryUndecided, path, c.field.Image, c.req,
			fmt.Sprintf("%s %q: cannot verify against %s: %s", path, c.field.Image, c.req.Policy, e.gate.registryProblem(c.ref.Context().RegistryStr(), r.err)))
		if c.req.Mode == policy.ModeEnforce || c.req.Mode == "" {
			e.f.record(SeverityRetry, "", d)
		} else {
			e.f.add(c.req.Mode, auditImagePolicy, d)
		}
	default: // neither verified nor a known failure: fail closed
		e.f.add(c.req.Mode, auditImagePolicy, e.about(CodeRegistryError, path, c.field.Image, c.req,
			fmt.Sprintf("%s %q: cannot verify against %s: %s", path, c.field.Image, c.req.Policy, e.gate.registryProblem(c.ref.Context().RegistryStr(), r.err))))
	}
}

// about is the finding of an image under a policy requirement. The
// authorities' names are listed only when findings are wanted.
func (e *evaluation) about(code Code, path, image string, r *policy.Requirement, line string) Finding {
	d := Finding{Code: code, Field: path, Image: image, Policy: r.Policy, Message: line}
	if e.f.structured && r.Err == nil {
		d.Authorities = r.Authorities.Names()
	}
	return d
}

// signAdvice says how to sign an image so that r's authorities accept
// it: with a key, as a keyless identity, or either.
func (e *evaluation) signAdvice(r *policy.Requirement) string {
	keys, identities := false, false
	for _, a := range r.Authorities.All() {
		if a.Keyless != nil {
			identities = true
		} else {
			keys = true
		}
	}
	how := "with a key"
	switch {
	case identities && keys:
		how = "with a key or as an identity"
	case identities:
		how = "as an identity"
	}
	return "sign it " + how + " trusted in namespace " + e.req.Namespace
}

func authorityNames(r *policy.Requirement) string {
	return strings.Join(r.Authorities.Names(), ", ")
}
