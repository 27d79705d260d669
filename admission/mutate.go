package admission

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/policy"
)

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// pin is one image the mutating webhook wants to pin.
type pin struct {
	field policy.ImageField
	ref   name.Reference
}

// mutate pins images: pods always (CREATE, UPDATE, the ephemeralcontainers
// subresource), workload templates when pinning.workloadTemplates is on.
func (g *Gate) mutate(ctx context.Context, req *admissionv1.AdmissionRequest) verdict {
	return g.mutateWith(ctx, req, false)
}

// mutateWith is mutate, with the findings behind its warnings as values
// when structured.
func (g *Gate) mutateWith(ctx context.Context, req *admissionv1.AdmissionRequest, structured bool) verdict {
	if !evaluated(req.Operation) {
		return oneVerdict(nil, one(structured, SeverityDeny, Finding{Code: CodeOperationNotReviewed, Message: outsideProtocol(req.Operation)}))
	}
	cfg := g.config.Current()
	gk := requestKind(req)
	if g.exempt(cfg, req.Namespace) || !g.pinnable(cfg, gk, req.SubResource) {
		return verdict{resp: allowed(nil)}
	}
	pod, err := extractPod(gk, req.Object.Raw)
	if err != nil {
		// Nothing to pin; the validating webhook denies what it cannot read.
		line := "signgate: cannot pin images: " + err.Error()
		v := verdict{resp: allowed([]string{line})}
		if structured {
			v.findings = []Finding{{Severity: SeverityWarn, Code: CodeObjectInvalid, Message: line}}
		}
		return v
	}
	fields := policy.Images(pod.Spec)
	w := findings{structured: structured}
	pins := g.pinsFor(req, gk, pod, fields, &w)
	var ops []patchOp
	if len(pins) > 0 {
		if rd, err := g.readsFor(ctx, req.Namespace, pod.Spec); err != nil {
			w.record(SeverityWarn, "", Finding{Code: CodeCredentialsLookup,
				Message: fmt.Sprintf("images not pinned: cannot read the registry credentials of namespace %s: %s; the validating webhook will deny them unpinned", req.Namespace, oneLine(err.Error()))})
		} else {
			ops = g.resolvePins(ctx, rd, pod.Prefix, pins, &w)
		}
	}
	warnings := w.warn
	v := verdict{images: imageStrings(fields), findings: w.list}
	if len(ops) == 0 {
		v.resp = allowed(sortedLines(warnings))
		return v
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		line := "signgate: cannot pin images: " + err.Error()
		v.resp = allowed(append(sortedLines(warnings), line))
		if structured {
			v.findings = append(v.findings, Finding{Severity: SeverityWarn, Code: CodePinFailed, Message: line})
		}
		return v
	}
	v.resp = patched(patch, sortedLines(warnings))
	return v
}

// pinnable reports whether the mutating webhook pins objects of this kind.
func (g *Gate) pinnable(cfg *policy.Config, gk groupKind, subresource string) bool {
	if gk == (groupKind{"", "Pod"}) {
		return subresource == "" || subresource == "ephemeralcontainers"
	}
	_, known := kinds[gk]
	return known && subresource == "" && cfg.Pinning.WorkloadTemplates
}

// pinsFor returns the images to pin: those without a digest that are new
// in this request. On UPDATE an image equal to the old object's at the same
// place is left alone: rewriting it would restart a running container, and
// existing ephemeral containers cannot be changed at all.
func (g *Gate) pinsFor(req *admissionv1.AdmissionRequest, gk groupKind, pod podTemplate, fields []policy.ImageField, w *findings) []pin {
	old := map[string]string{}
	if req.Operation == admissionv1.Update {
		if prev, err := extractPod(gk, req.OldObject.Raw); err == nil {
			for _, f := range policy.Images(prev.Spec) {
				old[f.JSONPointer(prev.Prefix)] = f.Image
			}
		}
	}
	var pins []pin
	for _, f := range fields {
		if f.Image == "" {
			continue
		}
		if len(old) > 0 && old[f.JSONPointer(pod.Prefix)] == f.Image {
			continue
		}
		parsed := g.refs.parse(f.Image)
		ref := parsed.ref
		if parsed.err != nil {
			path := f.Path(pod.Prefix)
			w.record(SeverityWarn, "", Finding{Code: CodeImageInvalid, Field: path, Image: f.Image,
				Message: fmt.Sprintf("%s %q: cannot pin: not a valid image reference", path, f.Image)})
			continue
		}
		if _, pinned := ref.(name.Digest); pinned {
			continue
		}
		pins = append(pins, pin{field: f, ref: ref})
	}
	return pins
}

// resolved is the outcome of one tag resolution.
type resolved struct {
	digest name.Digest
	err    error
}

// resolvePins resolves every pin (each distinct reference once), cached
// tags on this goroutine and the others in parallel, and returns the patch
// operations, in field order, recording a warning per failure in w. A failure leaves
// the image as written: the validating webhook then denies it with the
// reason, so nothing fails open. Offline, nothing is resolved: each pin is
// a warning.
func (g *Gate) resolvePins(ctx context.Context, rd reads, prefix string, pins []pin, w *findings) []patchOp {
	if g.offline {
		for _, p := range pins {
			path := p.field.Path(prefix)
			w.record(SeverityWarn, "", Finding{Code: CodeOfflineNotPinned, Field: path, Image: p.field.Image,
				Message: fmt.Sprintf("%s %q: not pinned by digest (offline: not resolved)", path, p.field.Image)})
		}
		return nil
	}
	index := map[string]int{}
	var results []resolved
	var misses []int // indexes into results of the tasks
	var tasks []func(context.Context) resolved
	for _, p := range pins {
		key := p.ref.Name()
		if _, ok := index[key]; ok {
			continue
		}
		index[key] = len(results)
		if d, ok := rd.resolveCached(p.ref); ok {
			results = append(results, resolved{digest: d})
			continue
		}
		misses = append(misses, len(results))
		results = append(results, resolved{})
		ref := p.ref
		tasks = append(tasks, func(ctx context.Context) resolved {
			d, err := rd.verifier.Resolve(ctx, ref)
			return resolved{d, err}
		})
	}
	for i, r := range runBounded(ctx, g.concurrency, tasks, func(err error) resolved { return resolved{err: err} }) {
		results[misses[i]] = r
	}
	var ops []patchOp
	for _, p := range pins {
		r := results[index[p.ref.Name()]]
		if r.err != nil {
			path := p.field.Path(prefix)
			w.record(SeverityWarn, "", Finding{Code: CodePinFailed, Field: path, Image: p.field.Image,
				Message: fmt.Sprintf("%s %q: cannot pin to a digest: %s; the validating webhook will deny it unpinned", path, p.field.Image, g.registryProblem(p.ref.Context().RegistryStr(), r.err))})
			continue
		}
		ops = append(ops, patchOp{Op: "replace", Path: p.field.JSONPointer(prefix), Value: p.field.Image + "@" + r.digest.DigestStr()})
	}
	return ops
}

// resolveCached returns the digest of ref when the verifier knows it
// without registry I/O.
func (r reads) resolveCached(ref name.Reference) (name.Digest, bool) {
	if r.cached == nil {
		return name.Digest{}, false
	}
	return r.cached.ResolveCached(ref)
}

func imageStrings(fields []policy.ImageField) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Image
	}
	return out
}
