package convert

// Kyverno ClusterPolicies and Policies with verifyImages rules
// (kyverno.io/v1, v2beta1, v2; the fields of Kyverno's
// api/kyverno/v1/image_verification_types.go) become signgate
// ClusterImagePolicies and ImagePolicies: one per verifyImages entry, plus
// one per attestation whose attestors differ from the image's.
//
// What needs no problem, because signgate always does it: pinning tags to
// digests (mutateDigest) and requiring a digest (verifyDigest); caching
// verdicts (useCache); checking pods and their controllers' templates
// (the autogen-controllers annotation, pod-controller kinds).

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/policy/v1alpha1"
)

func init() {
	register("kyverno.io/ClusterPolicy", convertKyverno)
	register("kyverno.io/Policy", convertKyverno)
}

// kyvernoVersions are the API versions of ClusterPolicy and Policy whose
// verifyImages rules this converter reads.
var kyvernoVersions = []string{"kyverno.io/v1", "kyverno.io/v2beta1", "kyverno.io/v2"}

// kyverno is the conversion of one Kyverno policy.
type kyverno struct {
	d          document
	o          Options
	namespaced bool // a Policy: ImagePolicies in its namespace
	action     string
	problems   []Problem
}

// report adds a problem at field.
func (k *kyverno) report(field, format string, args ...any) {
	k.problems = append(k.problems, k.d.problem(field, format, args...))
}

// convertKyverno converts a ClusterPolicy or Policy.
func convertKyverno(d document, o Options) ([]Object, []Problem) {
	k := &kyverno{d: d, o: o, namespaced: d.Kind == "Policy"}
	if !slices.Contains(kyvernoVersions, d.APIVersion) {
		k.report("apiVersion", "%s is not a version this converter knows (%s); the policy is not converted", d.APIVersion, strings.Join(kyvernoVersions, ", "))
		return nil, k.problems
	}
	spec := asMap(d.obj["spec"])
	k.specFields(spec)
	var out []Object
	for i, r := range asList(spec["rules"]) {
		out = append(out, k.rule(fmt.Sprintf("spec.rules[%d]", i), asMap(r))...)
	}
	return out, k.problems
}

// specFields reads the policy-level settings and reports those signgate
// has no equivalent for.
func (k *kyverno) specFields(spec map[string]any) {
	k.action = kyStr(spec["validationFailureAction"])
	if _, ok := spec["validationFailureActionOverrides"]; ok {
		k.report("spec.validationFailureActionOverrides", "per-namespace actions are not converted; every namespace gets the policy's action (use a ClusterImagePolicy per mode with a namespaceSelector)")
	}
	if kyStr(spec["failurePolicy"]) == "Ignore" {
		k.report("spec.failurePolicy", "Ignore (admit when Kyverno is unavailable) is the gate's webhook setting, not a policy's (chart value webhook.failurePolicy); not converted")
	}
	if kyStr(spec["applyRules"]) == "One" {
		k.report("spec.applyRules", "One (only the first matching rule applies) is not expressible: every rule is converted and signgate requires all of them (stricter)")
	}
	// background (scanning existing resources: `signgate audit` does it on
	// demand), webhookTimeoutSeconds (the gate's webhook timeout, a chart
	// value) and schemaValidation do not change which images are admitted.
	k.problems = append(k.problems, k.d.unknown("spec", spec,
		"rules", "validationFailureAction", "validationFailureActionOverrides", "failurePolicy",
		"applyRules", "background", "webhookTimeoutSeconds", "schemaValidation")...)
}

// rule converts one rule: each of its verifyImages entries.
func (k *kyverno) rule(path string, r map[string]any) []Object {
	vis := asList(r["verifyImages"])
	if len(vis) == 0 {
		k.report(path, "only verifyImages rules are converted; rule %q is left out", kyStr(r["name"]))
		return nil
	}
	sel := k.match(path, r)
	for _, f := range []string{"exclude", "preconditions", "celPreconditions", "context", "imageExtractors"} {
		if _, ok := r[f]; ok {
			k.report(path+"."+f, "%s", ruleFieldReason[f])
		}
	}
	k.problems = append(k.problems, k.d.unknown(path, r,
		"name", "match", "verifyImages", "exclude", "preconditions", "celPreconditions", "context", "imageExtractors", "skipBackgroundRequests")...)
	base := dnsName(k.d.Name + "-" + kyStr(r["name"]))
	var out []Object
	for i, vi := range vis {
		name := base
		if len(vis) > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		out = append(out, k.verifyImage(fmt.Sprintf("%s.verifyImages[%d]", path, i), name, sel, asMap(vi))...)
	}
	return out
}

// ruleFieldReason says why a rule field is not converted and what the
// output does instead.
var ruleFieldReason = map[string]string{
	"exclude":          "exclusions are not converted: the policy applies to what they exclude too (stricter)",
	"preconditions":    "preconditions are not converted: the policy applies whether they hold or not (stricter)",
	"celPreconditions": "preconditions are not converted: the policy applies whether they hold or not (stricter)",
	"context":          "context variables are not converted; fields that use them ({{ }}) are reported where they are",
	"imageExtractors":  "images in custom resources are not checked by signgate (it checks pods and workload templates); left out",
}

// match turns the rule's match block into a namespace selector (nil: every
// namespace), reporting what it cannot express; what is not expressed
// makes the policy apply more widely, never less.
func (k *kyverno) match(path string, r map[string]any) *metav1.LabelSelector {
	m := asMap(r["match"])
	path += ".match"
	if m["resources"] != nil { // the old form: one filter
		return k.combine(path, []*metav1.LabelSelector{k.filter(path, m)}, true)
	}
	all := m["all"] != nil
	kind := "any"
	if all {
		kind = "all"
	}
	var sels []*metav1.LabelSelector
	for i, f := range asList(m[kind]) {
		sels = append(sels, k.filter(fmt.Sprintf("%s.%s[%d]", path, kind, i), asMap(f)))
	}
	return k.combine(path+"."+kind, sels, all)
}

// podKinds are the kinds whose images signgate checks: pods and the pod
// controllers whose templates it checks.
var podKinds = []string{"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "ReplicationController"}

// filter converts one resource filter into a namespace selector.
func (k *kyverno) filter(path string, f map[string]any) *metav1.LabelSelector {
	for _, s := range []string{"subjects", "roles", "clusterRoles"} {
		if _, ok := f[s]; ok {
			k.report(path+"."+s, "matching by who makes the request is not expressible: the policy applies to everyone's pods (stricter)")
		}
	}
	k.problems = append(k.problems, k.d.unknown(path, f, "resources", "subjects", "roles", "clusterRoles")...)
	res := asMap(f["resources"])
	rp := path + ".resources"
	k.kinds(rp, res)
	for _, s := range []string{"name", "names", "selector", "annotations", "operations"} {
		if _, ok := res[s]; ok {
			k.report(rp+"."+s, "not expressible: the policy applies to every pod, whatever its %s (stricter)", s)
		}
	}
	k.problems = append(k.problems, k.d.unknown(rp, res, "kinds", "namespaces", "namespaceSelector", "name", "names", "selector", "annotations", "operations")...)
	var sel *metav1.LabelSelector
	if ns := asList(res["namespaces"]); len(ns) > 0 {
		sel = k.namespaces(rp+".namespaces", ns)
	}
	if nsSel, ok := res["namespaceSelector"]; ok {
		var s metav1.LabelSelector
		if err := remarshal(nsSel, &s); err != nil {
			k.report(rp+".namespaceSelector", "not a label selector (%v): the policy applies in every namespace (stricter)", err)
		} else {
			sel = intersect(sel, &s)
		}
	}
	if sel == nil {
		return &metav1.LabelSelector{} // every namespace
	}
	return sel
}

// kinds reports kinds that are not pods or pod controllers: the converted
// policy applies to pods whatever the kinds (stricter when Pod is absent).
func (k *kyverno) kinds(path string, res map[string]any) {
	for i, kv := range asList(res["kinds"]) {
		kind := kyStr(kv)
		if j := strings.LastIndex(kind, "/"); j >= 0 {
			kind = kind[j+1:]
		}
		if !slices.Contains(podKinds, kind) {
			k.report(fmt.Sprintf("%s.kinds[%d]", path, i), "signgate checks the images of pods and workload templates only, not of %s; the policy applies to pods", kyStr(kv))
		}
	}
}

// namespaces turns a list of namespace names into a selector on
// kubernetes.io/metadata.name; wildcards are not expressible and widen the
// policy to every namespace.
func (k *kyverno) namespaces(path string, ns []any) *metav1.LabelSelector {
	var names []string
	for _, n := range ns {
		s := kyStr(n)
		if strings.ContainsAny(s, "*?") {
			k.report(path, "namespace wildcard %q is not expressible as a label selector: the policy applies in every namespace (stricter)", s)
			return nil
		}
		names = append(names, s)
	}
	if k.namespaced {
		k.report(path, "an ImagePolicy applies in its own namespace only; the namespace list is not converted")
		return nil
	}
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: names,
	}}}
}

// combine joins the selectors of match.all (every filter: their
// intersection) or match.any (one filter: a union, expressible only when
// they are equal or one is unrestricted).
func (k *kyverno) combine(path string, sels []*metav1.LabelSelector, all bool) *metav1.LabelSelector {
	var out *metav1.LabelSelector
	for i, s := range sels {
		switch {
		case i == 0:
			out = s
		case all:
			out = intersect(out, s)
		case isEmpty(s) || isEmpty(out):
			out = &metav1.LabelSelector{}
		case !equalJSON(out, s):
			k.report(path, "the union of different namespace scopes is not expressible: the policy applies in every namespace (stricter)")
			out = &metav1.LabelSelector{}
		}
	}
	if out == nil || isEmpty(out) {
		return nil
	}
	return out
}

// intersect is a selector requiring both a and b (nil: unrestricted).
func intersect(a, b *metav1.LabelSelector) *metav1.LabelSelector {
	if a == nil || isEmpty(a) {
		return b
	}
	if b == nil || isEmpty(b) {
		return a
	}
	out := a.DeepCopy()
	for key, v := range b.MatchLabels {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpIn, Values: []string{v}})
	}
	out.MatchExpressions = append(out.MatchExpressions, b.MatchExpressions...)
	return out
}

func isEmpty(s *metav1.LabelSelector) bool {
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// verifyImage converts one verifyImages entry into its policies: nil
// (with the reason reported) when what signgate can express would admit
// more than the entry.
func (k *kyverno) verifyImage(path, name string, sel *metav1.LabelSelector, vi map[string]any) []Object {
	if t := kyStr(vi["type"]); t != "" && t != "Cosign" {
		k.report(path+".type", "%s signatures are not verified by signgate (cosign only); the policy is not written", t)
		return nil
	}
	k.verifyImageFields(path, vi)
	images, ok := k.images(path, vi)
	if !ok {
		return nil
	}
	mode := k.mode(path, vi)
	spec := func(auths []v1alpha1.Authority, threshold int) v1alpha1.ImagePolicySpec {
		return v1alpha1.ImagePolicySpec{Images: images, Authorities: auths, Threshold: int32(threshold), Mode: mode}
	}
	sigs, sigThreshold, ok := k.attestorSets(path+".attestors", "", asList(vi["attestors"]))
	if !ok {
		return nil
	}
	specs, ok := k.attestations(path, spec, sigs, sigThreshold, asList(vi["attestations"]))
	if !ok {
		return nil
	}
	var out []Object
	for i, s := range specs {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s-attestation-%d", name, i)
		}
		out = append(out, k.object(n, s, sel))
	}
	return out
}

// verifyImageFields reports the verifyImages settings signgate has no
// equivalent for.
func (k *kyverno) verifyImageFields(path string, vi map[string]any) {
	if b, ok := vi["required"].(bool); ok && !b {
		k.report(path+".required", "false is not expressible: signgate requires every matching image to verify (stricter)")
	}
	for _, f := range []string{"mutateDigest", "verifyDigest"} {
		if b, ok := vi[f].(bool); ok && !b {
			k.report(path+"."+f, "false is not expressible: signgate pins tags to digests and verifies the digest always (stricter for workloads that rely on tags)")
		}
	}
	if _, ok := vi["skipImageReferences"]; ok {
		k.report(path+".skipImageReferences", "not expressible: a static pass policy does not exempt images from other policies (they are ANDed); the skipped images are checked too (stricter)")
	}
	if s := kyStr(vi["repository"]); s != "" {
		k.report(path+".repository", "signatures in another repository (%s) are not read: signgate reads them next to the image; images signed only there are denied", s)
	}
	if _, ok := vi["imageRegistryCredentials"]; ok {
		k.report(path+".imageRegistryCredentials", "registry credentials are the gate's configuration (config.registry), not a policy's; left out")
	}
	for _, f := range []string{"annotations", "key", "roots", "subject", "issuer", "additionalExtensions", "image"} {
		if _, ok := vi[f]; ok {
			k.report(path+"."+f, "the deprecated single-attestor fields are not converted (write attestors); the policy is not written")
		}
	}
	k.problems = append(k.problems, k.d.unknown(path, vi,
		"type", "imageReferences", "skipImageReferences", "attestors", "attestations", "repository", "mutateDigest", "verifyDigest",
		"required", "useCache", "imageRegistryCredentials", "failureAction", "cosignOCI11",
		"annotations", "key", "roots", "subject", "issuer", "additionalExtensions", "image")...)
}

// mode is the verifyImages entry's failureAction, else the policy's
// validationFailureAction, else Kyverno's default Audit. Audit becomes
// audit, not warn: Kyverno admits the pod and records the failure in a
// policy report, without telling the user, as signgate's audit mode
// admits it with an audit annotation.
func (k *kyverno) mode(path string, vi map[string]any) v1alpha1.Mode {
	action, field := kyStr(vi["failureAction"]), path+".failureAction"
	if action == "" {
		action, field = k.action, "spec.validationFailureAction"
	}
	mode := v1alpha1.ModeAudit
	if strings.EqualFold(action, "enforce") {
		mode = v1alpha1.ModeEnforce
	}
	if mode == v1alpha1.ModeAudit && k.namespaced {
		if action == "" {
			field = "spec"
		}
		k.report(field, "Audit (Kyverno's default) is not allowed in an ImagePolicy, which is always enforced: converted to enforce (stricter); use a ClusterImagePolicy with a namespaceSelector for audit")
		return v1alpha1.ModeEnforce
	}
	return mode
}

// images converts imageReferences; false when a reference cannot be
// converted (the policy would then cover fewer images: not written).
func (k *kyverno) images(path string, vi map[string]any) ([]v1alpha1.ImageGlob, bool) {
	refs := asList(vi["imageReferences"])
	if len(refs) == 0 {
		k.report(path+".imageReferences", "no image references; the policy is not written")
		return nil, false
	}
	var out []v1alpha1.ImageGlob
	seen := map[string]bool{}
	for i, r := range refs {
		field := fmt.Sprintf("%s.imageReferences[%d]", path, i)
		globs, note := imageGlobs(kyStr(r))
		if note != "" {
			k.report(field, "%s", note)
		}
		for _, g := range globs {
			if _, err := policy.CompileGlob(g); err != nil {
				k.report(field, "%v; the policy is not written", err)
				return nil, false
			}
			if !seen[g] {
				seen[g] = true
				out = append(out, v1alpha1.ImageGlob{Glob: g})
			}
		}
	}
	return out, true
}

// imageGlobs translates a Kyverno image reference pattern (wildcards over
// the whole reference: "*" any run of characters, "/" and ":" included;
// "?" one character) into signgate globs over canonical repositories,
// exactly where it can and otherwise more widely, with a note saying so:
//
//   - "*" alone is "**"; a whole segment "*" is "**" (which also matches
//     zero segments in the middle of a pattern: "a/*/b" covers "a/b");
//   - a ":*" tag is dropped (signgate judges repositories); another tag
//     or a digest is dropped too, and the policy covers every tag;
//   - a segment with one "*" that may run into further segments, such as
//     "zulu*", is "zulu*" and "zulu*/**"; "x*y" is "x*y" and "x*/**/*y";
//   - "?" becomes "*" (wider); a wildcard in the host, or several in one
//     segment, make the glob "**" (wider).
func imageGlobs(ref string) ([]string, string) {
	if ref == "*" {
		return []string{"**"}, ""
	}
	var notes []string
	repo, tag := splitTag(ref)
	switch {
	case tag == ":*" || tag == "":
	case strings.HasPrefix(tag, ":") && strings.HasSuffix(tag, "*"):
		notes = append(notes, fmt.Sprintf("the tag pattern %q is dropped: signgate judges repositories, the policy covers every tag (stricter)", tag))
	default:
		notes = append(notes, fmt.Sprintf("the tag or digest %q is dropped: signgate judges repositories, the policy covers every tag and digest (stricter)", tag))
	}
	if strings.Contains(repo, "?") {
		repo = strings.ReplaceAll(repo, "?", "*")
		notes = append(notes, `"?" is widened to "*" (stricter)`)
	}
	segs := strings.Split(repo, "/")
	if strings.Contains(segs[0], "*") && len(segs) > 1 || strings.Count(repo, "*") > 1 && !wholeStars(segs) {
		notes = append(notes, "wildcards in the host or several in one path are not expressible exactly: the policy covers every image (stricter)")
		return []string{"**"}, strings.Join(notes, "; ")
	}
	return segmentGlobs(segs), strings.Join(notes, "; ")
}

// splitTag splits a reference pattern into its repository and its tag
// (":…") or digest ("@…") part.
func splitTag(ref string) (repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i:]
	}
	last := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > last && last >= 0 {
		return ref[:i], ref[i:]
	}
	return ref, ""
}

// wholeStars reports whether every "*" of segs is a whole segment.
func wholeStars(segs []string) bool {
	for _, s := range segs {
		if strings.Contains(s, "*") && s != "*" {
			return false
		}
	}
	return true
}

// segmentGlobs translates path segments with at most one partial "*"
// segment (or only whole "*" segments) into globs.
func segmentGlobs(segs []string) []string {
	out := make([]string, len(segs))
	partial := -1
	for i, s := range segs {
		switch {
		case s == "*":
			out[i] = "**"
		case strings.Contains(s, "*"):
			out[i], partial = s, i
		default:
			out[i] = s
		}
	}
	globs := []string{strings.Join(out, "/")}
	if partial < 0 {
		return globs
	}
	// The "*" may also run across "/": prefix* / ** / *suffix.
	pre, suf, _ := strings.Cut(segs[partial], "*")
	span := []string{pre + "*", "**"}
	if suf != "" {
		span = append(span, "*"+suf)
	}
	rest := append(append(append([]string{}, out[:partial]...), span...), out[partial+1:]...)
	return append(globs, strings.Join(rest, "/"))
}

// object wraps a spec as a ClusterImagePolicy (with sel) or, for a
// Policy, an ImagePolicy in its namespace.
func (k *kyverno) object(name string, spec v1alpha1.ImagePolicySpec, sel *metav1.LabelSelector) Object {
	tm := metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String()}
	if k.namespaced {
		tm.Kind = "ImagePolicy"
		return Object{From: k.d.Source, Obj: &v1alpha1.ImagePolicy{
			TypeMeta: tm, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.d.Namespace}, Spec: spec,
		}}
	}
	tm.Kind = "ClusterImagePolicy"
	return Object{From: k.d.Source, Obj: &v1alpha1.ClusterImagePolicy{
		TypeMeta: tm, ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterImagePolicySpec{ImagePolicySpec: spec, NamespaceSelector: sel},
	}}
}

// attestations builds the policies' specs: the image's authorities with
// the attestations whose attestors are the same, and one more spec per
// attestation with other attestors (signgate's attestations belong to an
// authority, which must also sign the image). false: not expressible
// without admitting more; the policy is not written.
func (k *kyverno) attestations(path string, spec func([]v1alpha1.Authority, int) v1alpha1.ImagePolicySpec,
	sigs []v1alpha1.Authority, sigThreshold int, atts []any) ([]v1alpha1.ImagePolicySpec, bool) {
	var extra []v1alpha1.ImagePolicySpec
	for i, a := range atts {
		ap := fmt.Sprintf("%s.attestations[%d]", path, i)
		att, ok := k.attestation(ap, i, asMap(a))
		if !ok {
			return nil, false
		}
		sets := asList(asMap(a)["attestors"])
		if len(sets) == 0 {
			if len(sigs) == 0 {
				k.report(ap+".attestors", "an attestation without attestors (not signature-checked) is not expressible; the policy is not written")
				return nil, false
			}
			k.report(ap+".attestors", "no attestors: the attestation must be signed by the image's authorities (stricter)")
			sigs = withAttestation(sigs, att)
			continue
		}
		auths, threshold, ok := k.attestorSets(ap+".attestors", fmt.Sprintf("attestation%d-", i), sets)
		if !ok {
			return nil, false
		}
		if len(sigs) > 0 && sameSigners(sigs, auths) && threshold == sigThreshold {
			sigs = withAttestation(sigs, att)
			if threshold < len(sigs) {
				k.report(ap, "signgate requires the signature and the attestation from the same authority, Kyverno from any of them each (stricter)")
			}
			continue
		}
		if len(sigs) == 0 {
			k.report(ap+".attestors", "signgate's attestations belong to an authority that also signs the image: these authorities must sign the image too (stricter)")
		} else {
			k.report(ap+".attestors", "signgate's attestations belong to an authority that also signs the image: written as a separate policy whose authorities must sign the image too (stricter)")
		}
		extra = append(extra, spec(withAttestation(auths, att), threshold))
	}
	var out []v1alpha1.ImagePolicySpec
	if len(sigs) > 0 {
		out = append(out, spec(sigs, sigThreshold))
	}
	if len(out) == 0 && len(extra) == 0 {
		k.report(path, "neither attestors nor attestations; the policy is not written")
		return nil, false
	}
	return append(out, extra...), true
}

// attestation converts the predicate type and conditions of one
// attestation; false when a condition cannot be translated (dropping it
// would admit more).
func (k *kyverno) attestation(path string, i int, a map[string]any) (v1alpha1.Attestation, bool) {
	k.problems = append(k.problems, k.d.unknown(path, a, "predicateType", "type", "attestors", "conditions", "name")...)
	pt := kyStr(a["type"])
	if pt == "" {
		pt = kyStr(a["predicateType"])
	}
	if pt == "" {
		k.report(path, "no type or predicateType; the policy is not written")
		return v1alpha1.Attestation{}, false
	}
	cond, err := conditionsCEL(asList(a["conditions"]))
	if err != nil {
		k.report(path+".conditions", "%v: not translatable to CEL, and the attestation without it would admit more; the policy is not written", err)
		return v1alpha1.Attestation{}, false
	}
	return v1alpha1.Attestation{Name: attestationName(i, pt), PredicateType: pt, Condition: cond}, true
}

// attestationName names attestation i of predicate type pt (unique
// within the authority, at most 63 characters).
func attestationName(i int, pt string) string {
	n := dnsName(fmt.Sprintf("%d-%s", i, strings.TrimPrefix(pt, "https://")))
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

// withAttestation returns auths, each also requiring att.
func withAttestation(auths []v1alpha1.Authority, att v1alpha1.Attestation) []v1alpha1.Authority {
	out := make([]v1alpha1.Authority, len(auths))
	for i, a := range auths {
		a.Attestations = append(append([]v1alpha1.Attestation{}, a.Attestations...), att)
		out[i] = a
	}
	return out
}

// sameSigners reports whether a and b trust the same keys and
// identities, in order.
func sameSigners(a, b []v1alpha1.Authority) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalJSON(a[i].Key, b[i].Key) || !equalJSON(a[i].Keyless, b[i].Keyless) {
			return false
		}
	}
	return true
}

// attestorSet is one converted attestor set: its authorities and how many
// of them Kyverno requires.
type attestorSet struct {
	auths    []v1alpha1.Authority
	required int
}

// attestorSets converts attestor sets (all required, each needing count of
// its entries) into one authority list and a threshold; false when what
// is left cannot require as much (the policy is not written).
func (k *kyverno) attestorSets(path, prefix string, sets []any) ([]v1alpha1.Authority, int, bool) {
	var conv []attestorSet
	for i, s := range sets {
		sp := fmt.Sprintf("%s[%d]", path, i)
		set, ok := k.attestorSet(sp, fmt.Sprintf("%sset%d", prefix, i), asMap(s))
		if !ok {
			return nil, 0, false
		}
		conv = append(conv, set)
	}
	auths, threshold, exact := combineSets(conv)
	if !exact {
		k.report(path, "several attestor sets, not all of whose entries are required, are not expressible as one threshold: all %d authorities are required (stricter)", threshold)
	}
	return auths, threshold, true
}

// combineSets joins attestor sets into one list and a threshold: exact for
// one set (threshold = its count) or sets that require all their entries
// (threshold = all); otherwise every authority is required, and exact is
// false.
func combineSets(sets []attestorSet) (auths []v1alpha1.Authority, threshold int, exact bool) {
	exact = true
	for _, s := range sets {
		auths = append(auths, s.auths...)
		if s.required < len(s.auths) {
			exact = len(sets) == 1
		}
	}
	switch {
	case len(sets) == 1:
		return auths, sets[0].required, true
	default:
		return auths, len(auths), exact
	}
}

// attestorSet converts one set: its entries (several PEMs in one entry are
// one authority each, as Kyverno counts them) and its count. Entries that
// cannot be converted are left out; false when fewer than count are left.
func (k *kyverno) attestorSet(path, prefix string, s map[string]any) (attestorSet, bool) {
	k.problems = append(k.problems, k.d.unknown(path, s, "count", "entries")...)
	total := 0
	var out attestorSet
	for i, e := range asList(s["entries"]) {
		ep := fmt.Sprintf("%s.entries[%d]", path, i)
		auths, n := k.entry(ep, fmt.Sprintf("%s-entry%d", prefix, i), asMap(e))
		total += n
		out.auths = append(out.auths, auths...)
	}
	out.required = total
	if c, ok := s["count"].(float64); ok && c > 0 {
		out.required = int(c)
	}
	if len(out.auths) < out.required || len(out.auths) == 0 {
		k.report(path, "%d of the set's entries are required and %d could be converted; the policy is not written", out.required, len(out.auths))
		return out, false
	}
	return out, true
}

// entry converts one attestor entry into authorities; n is how many
// entries Kyverno counts it as (one per public key).
func (k *kyverno) entry(path, name string, e map[string]any) (auths []v1alpha1.Authority, n int) {
	k.problems = append(k.problems, k.d.unknown(path, e, "keys", "keyless", "certificates", "attestor", "annotations", "repository")...)
	if _, ok := e["annotations"]; ok {
		k.report(path+".annotations", "signature annotations are not checked by signgate; the entry is left out (it would admit more)")
		return nil, 1
	}
	if r := kyStr(e["repository"]); r != "" {
		k.report(path+".repository", "signatures in another repository (%s) are not read: signgate reads them next to the image; images signed only there are denied", r)
	}
	switch {
	case e["keys"] != nil:
		return k.keys(path+".keys", name, asMap(e["keys"]))
	case e["keyless"] != nil:
		a, ok := k.keyless(path+".keyless", name, asMap(e["keyless"]))
		if !ok {
			return nil, 1
		}
		return []v1alpha1.Authority{a}, 1
	case e["certificates"] != nil:
		k.report(path+".certificates", "certificate attestors are not expressible (signgate trusts keys, or Fulcio certificates through a TrustRoot); the entry is left out")
	case e["attestor"] != nil:
		k.report(path+".attestor", "nested attestor sets are not expressible; the entry is left out")
	}
	return nil, 1
}

// keys converts a static key attestor.
func (k *kyverno) keys(path, name string, m map[string]any) ([]v1alpha1.Authority, int) {
	k.problems = append(k.problems, k.d.unknown(path, m, "publicKeys", "kms", "secret", "rekor", "ctlog", "signatureAlgorithm")...)
	if a := kyStr(m["signatureAlgorithm"]); a != "" && a != "sha256" {
		k.report(path+".signatureAlgorithm", "%s is not expressible: signgate verifies with the key's default digest; signatures made otherwise are denied", a)
	}
	switch {
	case m["kms"] != nil:
		k.report(path+".kms", "KMS keys are not read by signgate: export the public key (cosign public-key --key %s) into key.data; the entry is left out", kyStr(m["kms"]))
		return nil, 1
	case m["secret"] != nil:
		sec := asMap(m["secret"])
		k.keyLog(path, m)
		return []v1alpha1.Authority{k.secretKey(path+".secret", name, kyStr(sec["name"]), kyStr(sec["namespace"]))}, 1
	}
	pk := kyStr(m["publicKeys"])
	switch {
	case strings.HasPrefix(pk, "k8s://"):
		ns, sec, _ := strings.Cut(strings.TrimPrefix(pk, "k8s://"), "/")
		k.keyLog(path, m)
		return []v1alpha1.Authority{k.secretKey(path+".publicKeys", name, sec, ns)}, 1
	case strings.Contains(pk, "{{"):
		k.report(path+".publicKeys", "a key from a variable is not expressible; the entry is left out")
		return nil, 1
	}
	pems := kyPEMBlocks(pk)
	if len(pems) == 0 {
		k.report(path+".publicKeys", "no PEM PUBLIC KEY block (a KMS URI or certificate is not read); the entry is left out")
		return nil, 1
	}
	k.keyLog(path, m)
	var out []v1alpha1.Authority
	for i, p := range pems {
		n := name
		if len(pems) > 1 {
			n = fmt.Sprintf("%s-key%d", name, i)
		}
		out = append(out, v1alpha1.Authority{Name: n, Key: &v1alpha1.KeySource{Data: p}})
	}
	return out, len(pems)
}

// keyLog reports Kyverno's transparency-log settings of a key attestor:
// signgate verifies key signatures with the key alone.
func (k *kyverno) keyLog(path string, m map[string]any) {
	rekor := asMap(m["rekor"])
	if ignore, _ := rekor["ignoreTlog"].(bool); !ignore {
		k.report(path+".rekor", "Kyverno checks a Rekor entry unless rekor.ignoreTlog is true; signgate verifies key signatures with the key alone: converted without that check (a signature without a log entry is admitted)")
	}
	// ctlog: SCTs belong to certificates; a key signature has none.
}

// secretKey is an authority reading a public key from Secret name's
// cosign.pub, reporting where signgate looks for that Secret.
func (k *kyverno) secretKey(path, name, secret, ns string) v1alpha1.Authority {
	if k.namespaced && ns != "" && ns != k.d.Namespace {
		k.report(path, "an ImagePolicy reads Secrets in its own namespace (%s), not %s: copy Secret %s there", k.d.Namespace, ns, secret)
	} else if !k.namespaced {
		k.report(path, "a ClusterImagePolicy reads Secrets in the gate's namespace (signgate-system), not %s: copy Secret %s (key cosign.pub) there", ns, secret)
	}
	return v1alpha1.Authority{Name: name, Key: &v1alpha1.KeySource{SecretRef: &v1alpha1.SecretKeyRef{Name: secret, Key: "cosign.pub"}}}
}

var pemRE = regexp.MustCompile(`(?s)-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----`)

// pemBlocks splits a string of PEM public keys into one string each.
func kyPEMBlocks(s string) []string {
	var out []string
	for _, b := range pemRE.FindAllString(s, -1) {
		out = append(out, b+"\n")
	}
	return out
}

// keyless converts a keyless attestor: its identity, extensions and
// transparency-log settings, against the public-good TrustRoot. false when
// it would admit more than Kyverno (an extension signgate cannot check).
func (k *kyverno) keyless(path, name string, m map[string]any) (v1alpha1.Authority, bool) {
	k.problems = append(k.problems, k.d.unknown(path, m, "issuer", "subject", "issuerRegExp", "subjectRegExp", "roots", "rekor", "ctlog", "additionalExtensions")...)
	if _, ok := m["roots"]; ok {
		k.report(path+".roots", "custom Fulcio roots are not converted: the authority trusts TrustRoot %s instead; create a TrustRoot for your CA and name it (signatures from it are denied until then)", k.o.PublicGoodTrustRoot)
	}
	k.keylessLogs(path, m)
	id := k.identity(path, m)
	ext, ok := k.extensions(path+".additionalExtensions", asMap(m["additionalExtensions"]))
	if !ok {
		return v1alpha1.Authority{}, false
	}
	return v1alpha1.Authority{Name: name, Keyless: &v1alpha1.KeylessAuthority{
		TrustRoot: k.o.PublicGoodTrustRoot, Identities: []v1alpha1.KeylessIdentity{id}, Extensions: ext,
	}}, true
}

// keylessLogs reports Rekor and CT log settings other than the
// public-good defaults.
func (k *kyverno) keylessLogs(path string, m map[string]any) {
	rekor, ctlog := asMap(m["rekor"]), asMap(m["ctlog"])
	if u := kyStr(rekor["url"]); u != "" && strings.TrimRight(u, "/") != "https://rekor.sigstore.dev" {
		k.report(path+".rekor.url", "a private Rekor is not converted: the authority uses TrustRoot %s; create a TrustRoot listing that log", k.o.PublicGoodTrustRoot)
	}
	if _, ok := rekor["pubkey"]; ok {
		k.report(path+".rekor.pubkey", "a custom Rekor key belongs in a TrustRoot; the authority uses %s", k.o.PublicGoodTrustRoot)
	}
	if b, _ := rekor["ignoreTlog"].(bool); b {
		k.report(path+".rekor.ignoreTlog", "not expressible: signgate requires a log entry when the TrustRoot lists transparency logs (stricter)")
	}
	if b, _ := ctlog["ignoreSCT"].(bool); b {
		k.report(path+".ctlog.ignoreSCT", "not expressible: signgate requires SCTs when the TrustRoot lists CT logs (stricter; the public-good one does)")
	}
	if _, ok := ctlog["pubkey"]; ok {
		k.report(path+".ctlog.pubkey", "a custom CT log key belongs in a TrustRoot; the authority uses %s", k.o.PublicGoodTrustRoot)
	}
}

// identity converts issuer and subject, exact or regular expressions.
// Kyverno's (cosign's) regular expressions match anywhere in the value,
// signgate's the whole value: they are anchored with ".*" where needed,
// which is the same condition.
func (k *kyverno) identity(path string, m map[string]any) v1alpha1.KeylessIdentity {
	var id v1alpha1.KeylessIdentity
	id.Issuer, id.IssuerRegExp = k.exactOrRegExp(path, "issuer", kyStr(m["issuer"]), kyStr(m["issuerRegExp"]))
	id.Subject, id.SubjectRegExp = k.exactOrRegExp(path, "subject", kyStr(m["subject"]), kyStr(m["subjectRegExp"]))
	return id
}

// exactOrRegExp converts one identity field pair.
func (k *kyverno) exactOrRegExp(path, field, exact, re string) (string, string) {
	switch {
	case exact != "" && re != "":
		k.report(path+"."+field+"RegExp", "signgate takes one of %s and %sRegExp: the exact %s is kept", field, field, field)
		return exact, ""
	case exact != "":
		if strings.Contains(exact, "*") {
			k.report(path+"."+field, "a wildcard is taken literally (exact match, stricter); write a %sRegExp if it was meant as one", field)
		}
		return exact, ""
	case re != "":
		return "", wholeMatch(re)
	}
	k.report(path+"."+field, "none given: any %s is accepted, as in Kyverno (pin one)", field)
	return "", ".*"
}

// extensionNames maps Kyverno's additionalExtensions keys to signgate's
// (authority.ExtensionNames), case-insensitively.
func extensionName(kyvernoName string) (string, bool) {
	for _, n := range []string{
		"githubWorkflowTrigger", "githubWorkflowSHA", "githubWorkflowName", "githubWorkflowRepository", "githubWorkflowRef",
		"buildSignerURI", "buildSignerDigest", "runnerEnvironment", "sourceRepositoryURI", "sourceRepositoryDigest",
		"sourceRepositoryRef", "sourceRepositoryIdentifier", "sourceRepositoryOwnerURI", "sourceRepositoryOwnerIdentifier",
		"buildConfigURI", "buildConfigDigest", "buildTrigger", "runInvocationURI", "sourceRepositoryVisibilityAtSigning",
	} {
		if strings.EqualFold(n, kyvernoName) {
			return n, true
		}
	}
	return "", false
}

// extensions converts additionalExtensions; false when one has no
// signgate name (leaving it out would admit more).
func (k *kyverno) extensions(path string, m map[string]any) (map[string]string, bool) {
	if len(m) == 0 {
		return nil, true
	}
	out := map[string]string{}
	for _, key := range sortedKeys(m) {
		n, ok := extensionName(key)
		if !ok {
			k.report(path+"."+key, "not a certificate extension signgate checks; the entry is left out (it would admit more)")
			return nil, false
		}
		out[n] = kyStr(m[key])
	}
	return out, true
}

// conditionsCEL translates Kyverno attestation conditions (a list of
// any/all blocks, all of which must hold) into one CEL expression over
// predicate; "" for none.
func conditionsCEL(conds []any) (string, error) {
	var parts []string
	for i, c := range conds {
		block := asMap(c)
		for _, key := range sortedKeys(block) {
			if key != "any" && key != "all" {
				return "", fmt.Errorf("conditions[%d].%s: not any or all", i, key)
			}
		}
		for _, kind := range []string{"all", "any"} {
			list := asList(block[kind])
			if len(list) == 0 {
				continue
			}
			var terms []string
			for j, t := range list {
				e, err := conditionCEL(asMap(t))
				if err != nil {
					return "", fmt.Errorf("conditions[%d].%s[%d]: %w", i, kind, j, err)
				}
				terms = append(terms, e)
			}
			op := " && "
			if kind == "any" {
				op = " || "
			}
			parts = append(parts, group(terms, op, len(conds) > 1 || len(block) > 1))
		}
	}
	return strings.Join(parts, " && "), nil
}

// group joins terms with op, in parentheses when several and inside a
// larger expression.
func group(terms []string, op string, inner bool) string {
	s := strings.Join(terms, op)
	if len(terms) > 1 && inner {
		return "(" + s + ")"
	}
	return s
}

// keyRE is a condition key naming a predicate field: "{{ a.b }}",
// "{{ a.\"b-c\" }}".
var keyRE = regexp.MustCompile(`^\{\{\s*([A-Za-z_][A-Za-z0-9_]*|"[^"\\]+")((?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\\]+"))*)\s*\}\}$`)

// fieldCEL translates a key "{{ a.b }}" into predicate.a.b.
func fieldCEL(key string) (string, error) {
	m := keyRE.FindStringSubmatch(strings.TrimSpace(key))
	if m == nil {
		return "", fmt.Errorf("key %q is not a plain field path", key)
	}
	out := "predicate"
	for _, seg := range splitPath(m[1] + m[2]) {
		if strings.HasPrefix(seg, `"`) {
			out += "[" + seg + "]"
		} else {
			out += "." + seg
		}
	}
	return out, nil
}

// splitPath splits a JMESPath field path on the dots outside quotes.
func splitPath(p string) []string {
	var out []string
	cur, quoted := "", false
	for _, r := range p {
		switch {
		case r == '"':
			quoted = !quoted
			cur += string(r)
		case r == '.' && !quoted:
			out = append(out, cur)
			cur = ""
		default:
			cur += string(r)
		}
	}
	return append(out, cur)
}

// conditionCEL translates one {key, operator, value} condition.
func conditionCEL(c map[string]any) (string, error) {
	for _, k := range sortedKeys(c) {
		if k != "key" && k != "operator" && k != "value" && k != "message" {
			return "", fmt.Errorf("field %s is not translated", k)
		}
	}
	field, err := fieldCEL(kyStr(c["key"]))
	if err != nil {
		return "", err
	}
	op, v := kyStr(c["operator"]), c["value"]
	switch op {
	case "Equals", "NotEquals":
		lit, err := scalarCEL(v)
		if err != nil {
			return "", err
		}
		if op == "Equals" {
			return field + " == " + lit, nil
		}
		return field + " != " + lit, nil
	case "In", "AnyIn", "AllIn":
		list, err := listCEL(v)
		if err != nil {
			return "", err
		}
		return inCEL(op, field, list), nil
	case "GreaterThan", "GreaterThanOrEquals", "LessThan", "LessThanOrEquals":
		n, ok := v.(float64)
		if !ok {
			return "", fmt.Errorf("%s with a value that is not a number", op)
		}
		return fmt.Sprintf("double(%s) %s %s", field, orderOps[op], numberCEL(n)), nil
	}
	return "", fmt.Errorf("operator %q is not translated", op)
}

var orderOps = map[string]string{"GreaterThan": ">", "GreaterThanOrEquals": ">=", "LessThan": "<", "LessThanOrEquals": "<="}

// inCEL is field in list (In: the value is one of them; AnyIn: a value or
// one of a list's elements is; AllIn: every element is).
func inCEL(op, field, list string) string {
	switch op {
	case "AnyIn":
		return fmt.Sprintf("(type(%[1]s) == list ? %[1]s.exists(x, x in %[2]s) : %[1]s in %[2]s)", field, list)
	case "AllIn":
		return fmt.Sprintf("(type(%[1]s) == list ? %[1]s.all(x, x in %[2]s) : %[1]s in %[2]s)", field, list)
	}
	return field + " in " + list
}

// scalarCEL is a CEL literal for a string, number or bool without
// Kyverno's wildcards.
func scalarCEL(v any) (string, error) {
	switch x := v.(type) {
	case string:
		if strings.ContainsAny(x, "*?") || strings.Contains(x, "{{") {
			return "", fmt.Errorf("value %q has wildcards or variables", x)
		}
		return strconv.Quote(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return numberCEL(x), nil
	}
	return "", fmt.Errorf("value %v is not a string, number or bool", v)
}

// numberCEL is a double literal (JSON numbers are doubles).
func numberCEL(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// listCEL is a CEL list literal of scalars.
func listCEL(v any) (string, error) {
	l, ok := v.([]any)
	if !ok {
		return "", fmt.Errorf("value %v is not a list", v)
	}
	var items []string
	for _, x := range l {
		s, err := scalarCEL(x)
		if err != nil {
			return "", err
		}
		items = append(items, s)
	}
	return "[" + strings.Join(items, ", ") + "]", nil
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsName is s lower-cased with other characters replaced by "-", at most
// 253 characters, starting and ending alphanumeric.
func dnsName(s string) string {
	s = nonDNS.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > 253 {
		s = s[:253]
	}
	return strings.Trim(s, "-")
}

// asMap, asList and str read decoded YAML, nil or "" when absent or of
// another type.
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }
func kyStr(v any) string         { s, _ := v.(string); return s }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// remarshal decodes a YAML value into a typed one through JSON.
func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
