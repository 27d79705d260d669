package convert

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// policy-controller (github.com/sigstore/policy-controller): its
// ClusterImagePolicies (policy.sigstore.dev v1alpha1 and v1beta1, the same
// schema) become signgate ClusterImagePolicies, its TrustRoots signgate
// TrustRoots (policycontroller_trustroot.go).

func init() {
	register("policy.sigstore.dev/ClusterImagePolicy", convertPCPolicy)
	register("policy.sigstore.dev/TrustRoot", convertPCTrustRoot)
}

// pcPublicFulcio is the Fulcio URL policy-controller means by default: the
// public-good instance.
const pcPublicFulcio = "https://fulcio.sigstore.dev"

// pcPublicRekor is the public-good transparency log.
const pcPublicRekor = "https://rekor.sigstore.dev"

// pcConv is the state of one policy-controller object's conversion.
type pcConv struct {
	d        document
	o        Options
	problems []Problem
	// notWritten is set when the object is not written at all (the
	// problems say why).
	notWritten bool
}

// report adds a problem at field.
func (c *pcConv) report(field, format string, args ...any) {
	c.problems = append(c.problems, c.d.problem(field, format, args...))
}

// unknown reports the keys of m that are not known.
func (c *pcConv) unknown(path string, m map[string]any, known ...string) {
	c.problems = append(c.problems, c.d.unknown(path, m, known...)...)
}

// checkVersion reports an apiVersion other than the given versions of
// policy.sigstore.dev; false means the object is not converted.
func (c *pcConv) checkVersion(versions ...string) bool {
	_, v, _ := strings.Cut(c.d.APIVersion, "/")
	if slices.Contains(versions, v) {
		return true
	}
	c.report("apiVersion", "policy.sigstore.dev version %q is not one this converter knows (%s); the object is not converted", v, strings.Join(versions, ", "))
	return false
}

// convertPCPolicy converts a policy-controller ClusterImagePolicy.
func convertPCPolicy(d document, o Options) ([]Object, []Problem) {
	c := &pcConv{d: d, o: o}
	if !c.checkVersion("v1alpha1", "v1beta1") {
		return nil, c.problems
	}
	spec, _ := d.obj["spec"].(map[string]any)
	c.unknown("spec", spec, "images", "authorities", "policy", "mode", "match")
	out := v1alpha1.ClusterImagePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ClusterImagePolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name},
	}
	s := &out.Spec.ImagePolicySpec
	s.Mode = c.mode(spec)
	if _, ok := spec["policy"]; ok {
		c.report("spec.policy", "a CUE or Rego policy over the verified signatures and attestations cannot be expressed in signgate; the policy is not written, since without it signgate would admit what it denies")
		c.notWritten = true
	}
	c.match(spec)
	s.Authorities, s.Static = c.authorities(spec)
	staticPass := s.Static != nil && s.Static.Action == v1alpha1.StaticPass
	s.Images = c.images(spec, staticPass || s.Mode != v1alpha1.ModeEnforce)
	if len(s.Images) == 0 {
		c.notWritten = true
	}
	if len(s.Authorities) == 0 && s.Static == nil {
		c.notWritten = true
	}
	if c.notWritten {
		c.report("", "not written: see the other problems of this policy")
		return nil, c.problems
	}
	return []Object{{From: d.Source, Obj: &out}}, c.problems
}

// mode converts spec.mode (enforce or warn; default enforce).
func (c *pcConv) mode(spec map[string]any) v1alpha1.Mode {
	m, _ := spec["mode"].(string)
	switch m {
	case "", "enforce":
		return v1alpha1.ModeEnforce
	case "warn":
		return v1alpha1.ModeWarn
	}
	c.report("spec.mode", "mode %q is not enforce or warn; converted as enforce", m)
	return v1alpha1.ModeEnforce
}

// match reports spec.match: signgate checks every pod and workload
// template, so the converted policy applies to more resources (stricter).
func (c *pcConv) match(spec map[string]any) {
	if _, ok := spec["match"]; !ok {
		return
	}
	c.report("spec.match", "signgate policies cannot select resources by kind or labels; left out: the converted policy applies to every pod and workload template (stricter)")
}

// images converts spec.images. Globs that signgate can only express more
// widely are left out when widening would admit more (a static pass or a
// warn policy: narrow is set).
func (c *pcConv) images(spec map[string]any, narrow bool) []v1alpha1.ImageGlob {
	list, _ := spec["images"].([]any)
	if len(list) == 0 {
		c.report("spec.images", "no images; the policy is not written")
	}
	var out []v1alpha1.ImageGlob
	for i, it := range list {
		path := fmt.Sprintf("spec.images[%d]", i)
		m, _ := it.(map[string]any)
		c.unknown(path, m, "glob", "regex")
		if re, ok := m["regex"].(string); ok {
			c.report(path+".regex", "regular expression %q over image references cannot be expressed as signgate globs; left out, the images it matched are not covered by this policy", re)
			continue
		}
		g, _ := m["glob"].(string)
		tr := translateGlob(g)
		switch {
		case tr.globs == nil:
			c.report(path+".glob", "%q: %s; left out, the images it matched are not covered by this policy", g, tr.note)
			continue
		case tr.note != "" && narrow:
			c.report(path+".glob", "%q: %s; left out, since this policy (static pass or warn mode) would then admit more", g, tr.note)
			continue
		case tr.note != "":
			c.report(path+".glob", "%q: %s; converted as %s (stricter: the policy's requirements apply to more images)", g, tr.note, strings.Join(tr.globs, ", "))
		}
		for _, s := range tr.globs {
			out = append(out, v1alpha1.ImageGlob{Glob: s})
		}
	}
	return out
}

// globTranslation is a policy-controller glob in signgate's terms.
type globTranslation struct {
	// globs are the signgate globs; nil when none can express it.
	globs []string
	// note says how globs differ from the source (they match more), or
	// why there are none; "" when they match exactly the same
	// repositories.
	note string
}

// translateGlob translates a policy-controller glob. policy-controller
// compiles a glob to a regular expression over the whole reference as
// go-containerregistry names it (index.docker.io/library/nginx:latest,
// repo@sha256:…): "." is literal, "*" matches any run without "/" (so a
// trailing "*" also matches the tag), "**" any run at all, across "/";
// "*" alone means index.docker.io/library/* and "*/*" index.docker.io/*/*.
// signgate globs match repositories only, with "*" within one segment
// (within one label in the host) and "**" as whole segments.
func translateGlob(g string) globTranslation {
	switch g {
	case "*":
		return globTranslation{globs: []string{"index.docker.io/library/*"}}
	case "*/*":
		return globTranslation{globs: []string{"index.docker.io/*/*"}}
	case "**":
		return globTranslation{globs: []string{"**"}}
	}
	if strings.Contains(g, "@") {
		return globTranslation{note: "names a digest; signgate policies match repositories, never a tag or digest"}
	}
	segs := strings.Split(g, "/")
	if len(segs) == 1 && strings.Contains(g, "**") {
		return globTranslation{note: "mixes \"**\" (which crosses \"/\" and the tag in policy-controller) with text; signgate cannot express that"}
	}
	if len(segs) == 1 {
		return globTranslation{note: "has no registry host and path; policy-controller matches it only against references written exactly so (a deprecated fallback), which signgate cannot express"}
	}
	host, last := segs[0], len(segs)-1
	var note string
	if repo, tag, ok := strings.Cut(segs[last], ":"); ok {
		if tag != "*" && tag != "**" {
			return globTranslation{note: fmt.Sprintf("matches the tag %q only; signgate policies match repositories, never a tag", tag)}
		}
		segs[last] = repo
		note = "matches every tag but no digest reference; signgate matches every tag and digest of the repositories"
	} else if !strings.HasSuffix(segs[last], "*") {
		note = "policy-controller matches it only when a pod names the image without a tag or digest; signgate matches every tag and digest of the repository"
	}
	if strings.Contains(host, "*") {
		return globTranslation{note: "has a wildcard in the registry host, where policy-controller's \"*\" also crosses \".\" and \":\"; signgate cannot express that"}
	}
	for i, s := range segs[1:last] {
		if strings.Contains(s, "**") && s != "**" {
			return globTranslation{note: fmt.Sprintf("segment %q mixes \"**\" (which crosses \"/\" in policy-controller) with text; signgate cannot express that", s)}
		}
		if s == "**" {
			note = joinNotes(note, fmt.Sprintf("\"**\" as segment %d matches one or more segments in policy-controller, zero or more in signgate", i+1))
		}
	}
	prefix := strings.Join(segs[:last], "/") + "/"
	tail := segs[last]
	switch {
	case tail == "**":
		return globTranslation{globs: []string{prefix + "**"}, note: note}
	case strings.Contains(strings.TrimSuffix(tail, "**"), "**"):
		return globTranslation{note: fmt.Sprintf("segment %q mixes \"**\" (which crosses \"/\" in policy-controller) with text; signgate cannot express that", tail)}
	case strings.HasSuffix(tail, "**"):
		// "foo**": a last segment starting with foo, or anything below one.
		p := strings.TrimSuffix(tail, "**") + "*"
		return globTranslation{globs: []string{prefix + p, prefix + p + "/**"}, note: note}
	}
	return globTranslation{globs: []string{prefix + tail}, note: note}
}

// joinNotes joins two notes with "; ", either possibly empty.
func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// authorities converts spec.authorities: any one of policy-controller's
// authorities suffices, as with signgate's default threshold 1. An
// authority that cannot be converted faithfully is dropped (the policy
// then admits less); a static authority becomes spec.static.
func (c *pcConv) authorities(spec map[string]any) ([]v1alpha1.Authority, *v1alpha1.Static) {
	list, _ := spec["authorities"].([]any)
	if len(list) == 0 {
		c.report("spec.authorities", "no authorities; the policy is not written")
		return nil, nil
	}
	var out []v1alpha1.Authority
	var pass, fail bool
	for i, it := range list {
		path := fmt.Sprintf("spec.authorities[%d]", i)
		m, _ := it.(map[string]any)
		if st, ok := m["static"].(map[string]any); ok {
			a := c.static(path, m, st)
			pass = pass || a == v1alpha1.StaticPass
			fail = fail || a == v1alpha1.StaticFail
			continue
		}
		if a := c.authority(path, i, m); a != nil {
			out = append(out, *a)
		}
	}
	switch {
	case pass:
		if len(list) > 1 {
			c.report("spec.authorities", "a static pass authority admits every image whatever the others say; converted as static pass, the other authorities left out")
		}
		return nil, &v1alpha1.Static{Action: v1alpha1.StaticPass}
	case fail && len(out) == 0:
		return nil, &v1alpha1.Static{Action: v1alpha1.StaticFail}
	case len(out) == 0:
		c.report("spec.authorities", "no authority could be converted; the policy is not written (it would admit nothing signgate can check)")
	}
	return out, nil
}

// static reads a static authority's action ("" when it is not pass or
// fail, reported).
func (c *pcConv) static(path string, m, st map[string]any) v1alpha1.StaticAction {
	c.unknown(path, m, "name", "static")
	c.unknown(path+".static", st, "action", "message")
	if msg, ok := st["message"].(string); ok {
		c.report(path+".static.message", "signgate has no custom message for a static verdict (%q); left out, denials name the policy", msg)
	}
	a, _ := st["action"].(string)
	switch v1alpha1.StaticAction(a) {
	case v1alpha1.StaticPass, v1alpha1.StaticFail:
		return v1alpha1.StaticAction(a)
	}
	c.report(path+".static.action", "action %q is not pass or fail; the authority is left out", a)
	return ""
}

// authority converts one key or keyless authority; nil when it is
// dropped (reported).
func (c *pcConv) authority(path string, i int, m map[string]any) *v1alpha1.Authority {
	c.unknown(path, m, "name", "key", "keyless", "source", "ctlog", "attestations", "rfc3161timestamp", "signatureFormat")
	name, _ := m["name"].(string)
	if name == "" {
		name = fmt.Sprintf("authority-%d", i) // policy-controller's own default
	}
	a := &v1alpha1.Authority{Name: name}
	ok := true
	key, hasKey := m["key"].(map[string]any)
	keyless, hasKeyless := m["keyless"].(map[string]any)
	trustRoot := ""
	switch {
	case hasKey && !hasKeyless:
		a.Key, ok = c.key(path+".key", key)
	case hasKeyless && !hasKey:
		a.Keyless, ok = c.keyless(path+".keyless", keyless)
		if a.Keyless != nil {
			trustRoot = a.Keyless.TrustRoot
		}
	default:
		c.report(path, "needs exactly one of key, keyless or static; the authority is left out")
		return nil
	}
	ok = c.sources(path, m) && ok
	c.ctlog(path, m, hasKey, trustRoot)
	ok = c.timestamp(path, m, hasKey, trustRoot) && ok
	var attOK bool
	a.Attestations, attOK = c.attestations(path, m)
	if !ok || !attOK {
		return nil
	}
	return a
}

// key converts a key authority's key.
func (c *pcConv) key(path string, k map[string]any) (*v1alpha1.KeySource, bool) {
	c.unknown(path, k, "data", "secretRef", "kms", "hashAlgorithm")
	ok := true
	if h, _ := k["hashAlgorithm"].(string); h != "" && !strings.EqualFold(h, "sha256") {
		c.report(path+".hashAlgorithm", "signatures over a %s digest are not verified by signgate (sha256 only); the authority is left out", h)
		ok = false
	}
	if kms, _ := k["kms"].(string); kms != "" {
		c.report(path+".kms", "signgate reads keys from the policy or a Secret, not from a KMS (%s); the authority is left out: export the public key (cosign public-key --key %s) and add it as key.data", kms, kms)
		return nil, false
	}
	if ref, isRef := k["secretRef"].(map[string]any); isRef {
		c.unknown(path+".secretRef", ref, "name", "namespace")
		name, _ := ref["name"].(string)
		c.report(path+".secretRef", "policy-controller reads the only key of Secret %q in its own namespace; signgate reads one named key of a Secret in the gate's namespace: converted as secretRef {name: %s, key: cosign.pub}, copy the Secret to the gate's namespace (signgate-system) with the public key under cosign.pub", name, name)
		return &v1alpha1.KeySource{SecretRef: &v1alpha1.SecretKeyRef{Name: name, Key: "cosign.pub"}}, ok
	}
	data, _ := k["data"].(string)
	if !strings.Contains(data, "-----BEGIN PUBLIC KEY-----") {
		c.report(path+".data", "not a PEM PUBLIC KEY block; the authority is left out")
		return nil, false
	}
	return &v1alpha1.KeySource{Data: data}, ok
}

// keyless converts a keyless authority: the Fulcio instance becomes a
// TrustRoot name, the identities are kept.
func (c *pcConv) keyless(path string, k map[string]any) (*v1alpha1.KeylessAuthority, bool) {
	c.unknown(path, k, "url", "identities", "ca-cert", "trustRootRef", "insecureIgnoreSCT")
	out := &v1alpha1.KeylessAuthority{}
	ok := true
	url, _ := k["url"].(string)
	ref, _ := k["trustRootRef"].(string)
	switch {
	case ref != "":
		out.TrustRoot = ref
	case k["ca-cert"] != nil:
		c.report(path+".ca-cert", "signgate reads Fulcio CAs from a TrustRoot only; the authority is left out: create a TrustRoot with this CA and name it in keyless.trustRoot")
		ok = false
	case url == "" || strings.TrimSuffix(url, "/") == pcPublicFulcio:
		out.TrustRoot = c.o.PublicGoodTrustRoot
	default:
		c.report(path+".url", "Fulcio at %s is not the public-good instance, and signgate reads its CAs from a TrustRoot only; the authority is left out: create a TrustRoot for this instance and name it in keyless.trustRoot", url)
		ok = false
	}
	if v, _ := k["insecureIgnoreSCT"].(bool); v {
		c.report(path+".insecureIgnoreSCT", "signgate always checks SCTs when the TrustRoot lists CT logs; left out (stricter)")
	}
	out.Identities = c.identities(path+".identities", k)
	return out, ok
}

// identities converts keyless identities. policy-controller's regular
// expressions match anywhere in the value, signgate's the whole value:
// they are widened to say the same, and a missing issuer or subject
// (any) becomes ".*".
func (c *pcConv) identities(path string, k map[string]any) []v1alpha1.KeylessIdentity {
	list, _ := k["identities"].([]any)
	if len(list) == 0 {
		c.report(path, "no identities: policy-controller accepts a certificate for any identity; converted as issuerRegExp and subjectRegExp \".*\", as permissive as the source: name the identities you trust")
		return []v1alpha1.KeylessIdentity{{IssuerRegExp: ".*", SubjectRegExp: ".*"}}
	}
	var out []v1alpha1.KeylessIdentity
	for i, it := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		m, _ := it.(map[string]any)
		c.unknown(p, m, "issuer", "subject", "issuerRegExp", "subjectRegExp")
		var id v1alpha1.KeylessIdentity
		id.Issuer, id.IssuerRegExp = c.identityPart(p, "issuer", m)
		id.Subject, id.SubjectRegExp = c.identityPart(p, "subject", m)
		out = append(out, id)
	}
	return out
}

// identityPart converts the exact value or regular expression of one
// part (issuer or subject) of an identity.
func (c *pcConv) identityPart(path, part string, m map[string]any) (exact, re string) {
	exact, _ = m[part].(string)
	re, _ = m[part+"RegExp"].(string)
	switch {
	case exact != "" && re != "":
		c.report(path+"."+part+"RegExp", "both %s and %sRegExp are given; kept %s, which is stricter", part, part, part)
		return exact, ""
	case exact != "":
		return exact, ""
	case re != "":
		return "", wholeMatch(re)
	}
	c.report(path, "no %s: policy-controller accepts any; converted as %sRegExp \".*\", as permissive as the source", part, part)
	return "", ".*"
}

// wholeMatch rewrites a regular expression that policy-controller matches
// anywhere in a value into one that matches the whole value, as signgate
// applies it: one already anchored at both ends is kept.
func wholeMatch(re string) string {
	if strings.HasPrefix(re, "^") && strings.HasSuffix(re, "$") && !strings.HasSuffix(re, `\$`) && !strings.Contains(re, "|") {
		return re
	}
	if _, err := regexp.Compile(re); err != nil {
		return re // signgate reports it as invalid
	}
	return ".*(?:" + re + ").*"
}

// sources reports source (signatures in another repository, with their
// pull secrets): signgate reads signatures next to the image only. false
// when the authority is dropped.
func (c *pcConv) sources(path string, m map[string]any) bool {
	list, _ := m["source"].([]any)
	ok := true
	for i, it := range list {
		p := fmt.Sprintf("%s.source[%d]", path, i)
		s, _ := it.(map[string]any)
		c.unknown(p, s, "oci", "signaturePullSecrets", "tagPrefix")
		if oci, _ := s["oci"].(string); oci != "" {
			c.report(p+".oci", "signgate reads signatures from the image's own repository, not from %s; the authority is left out (its signatures would not be found)", oci)
			ok = false
		}
		if t, has := s["tagPrefix"]; has {
			c.report(p+".tagPrefix", "signgate reads cosign's default signature tags only, not prefix %v; the authority is left out", t)
			ok = false
		}
		if _, has := s["signaturePullSecrets"]; has {
			c.report(p+".signaturePullSecrets", "signgate reads signatures with the pod's and the gate's registry credentials; left out")
		}
	}
	return ok
}

// ctlog reports what signgate does instead of an authority's ctlog: the
// transparency logs are the TrustRoot's (keyless).
func (c *pcConv) ctlog(path string, m map[string]any, isKey bool, trustRoot string) {
	t, has := m["ctlog"].(map[string]any)
	if !has {
		return
	}
	p := path + ".ctlog"
	c.unknown(p, t, "url", "trustRootRef")
	url, _ := t["url"].(string)
	ref, _ := t["trustRootRef"].(string)
	switch {
	case isKey:
		c.report(p, "signgate verifies a key signature with the key alone and does not look up a transparency log entry for it; left out")
	case trustRoot == "":
		// The keyless authority is left out already (reported).
	case ref != "" && ref == trustRoot:
		// The same TrustRoot: signgate checks its logs.
	case ref == "" && url == "":
		c.report(p, "policy-controller skips the transparency log check here; signgate needs a log entry whenever the TrustRoot lists transparency logs; left out (stricter)")
	case ref == "" && strings.TrimSuffix(url, "/") == pcPublicRekor && trustRoot == c.o.PublicGoodTrustRoot:
		// The public-good log, which the public-good TrustRoot lists.
	default:
		c.report(p, "signgate checks log entries against the transparency logs of the authority's TrustRoot %q, not a separately named log; left out", trustRoot)
	}
}

// timestamp converts rfc3161timestamp: for keyless authorities the
// timestamp authorities are the TrustRoot's. false when the authority is
// dropped.
func (c *pcConv) timestamp(path string, m map[string]any, isKey bool, trustRoot string) bool {
	t, has := m["rfc3161timestamp"].(map[string]any)
	if !has {
		return true
	}
	p := path + ".rfc3161timestamp"
	c.unknown(p, t, "trustRootRef")
	ref, _ := t["trustRootRef"].(string)
	switch {
	case isKey:
		c.report(p, "signgate does not verify RFC 3161 timestamps of key signatures; left out")
	case trustRoot != "" && ref != trustRoot:
		c.report(p, "signgate verifies timestamps against the authority's TrustRoot %q, not TrustRoot %q; the authority is left out", trustRoot, ref)
		return false
	}
	return true
}

// attestations converts an authority's attestations. One with a CUE or
// Rego policy cannot be expressed as a CEL condition automatically, and
// without it the attestation would be weaker: false, the authority is
// dropped.
func (c *pcConv) attestations(path string, m map[string]any) ([]v1alpha1.Attestation, bool) {
	list, _ := m["attestations"].([]any)
	var out []v1alpha1.Attestation
	ok := true
	for i, it := range list {
		p := fmt.Sprintf("%s.attestations[%d]", path, i)
		a, _ := it.(map[string]any)
		c.unknown(p, a, "name", "predicateType", "policy")
		name, _ := a["name"].(string)
		if name == "" {
			name = fmt.Sprintf("attestation-%d", i)
		}
		pt, _ := a["predicateType"].(string)
		if pol, has := a["policy"].(map[string]any); has {
			typ, _ := pol["type"].(string)
			c.report(p+".policy", "a %s policy cannot be converted to a CEL condition automatically, and the attestation would be weaker without it; the authority is left out: write a condition over predicate by hand", typ)
			ok = false
			continue
		}
		out = append(out, v1alpha1.Attestation{Name: name, PredicateType: pt})
	}
	return out, ok
}
