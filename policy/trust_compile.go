package policy

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/policy/v1alpha1"
)

// Kinds of policy objects.
const (
	KindClusterImagePolicy = "ClusterImagePolicy"
	KindImagePolicy        = "ImagePolicy"
)

// policyObject is one policy as a source loaded it, before compilation.
type policyObject struct {
	Kind       string // KindClusterImagePolicy or KindImagePolicy
	Namespace  string // ImagePolicy only
	Name       string
	Generation int64
	Spec       v1alpha1.ImagePolicySpec
	Selector   *metav1.LabelSelector // ClusterImagePolicy only
	DecodeErr  error                 // the object could not be decoded; Spec is unusable
}

// ID names the policy in messages: "ClusterImagePolicy corp",
// "ImagePolicy team-a/ci".
func (o *policyObject) ID() string {
	if o.Kind == KindImagePolicy {
		return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	return o.Kind + " " + o.Name
}

// secretLookup returns the data of a Secret; an error means it could not be
// read (missing, forbidden, unreachable).
type secretLookup func(namespace, name string) (map[string][]byte, error)

// compiler turns policy objects into a trustSet. Parsed keys are cached by
// their PEM text, and parsed trusted roots by the SHA-256 of their JSON,
// from one compilation to the next, so an unrelated edit does not re-parse
// every key. Not safe for concurrent use: each source compiles from one
// goroutine.
type compiler struct {
	gateNamespace string // where ClusterImagePolicy secretRefs and TrustRoot refs live
	secrets       secretLookup
	configMaps    secretLookup                // ConfigMap data (and binaryData) by namespace and name
	trustRootObjs map[string]*trustRootObject // by name; set by the source before compile
	// tufData returns the trusted_root.json last fetched for a TUF
	// TrustRoot (ClusterSource); nil where nothing fetches them.
	tufData func(tufKey) ([]byte, error)
	// structural checks a policy on its own (lint, apply-time
	// validation): what lives outside it — the Secret of a secretRef, the
	// TrustRoot a keyless authority names — is not read, and stands in
	// for itself.
	structural bool
	keys       map[string]crypto.PublicKey
	roots      map[string]root.TrustedMaterial // by hex SHA-256 of the JSON
}

// compileState is what one compilation has parsed and resolved so far:
// what it uses is kept for the next one.
type compileState struct {
	keys       map[string]crypto.PublicKey
	roots      map[string]root.TrustedMaterial
	trustRoots map[string]trustRootResult // by TrustRoot name: each is resolved once per compilation
}

// compileResult is the verdict on one object, for status and logs.
type compileResult struct {
	Object *policyObject
	Err    *InvalidPolicyError // nil when valid
}

func (c *compiler) compile(objs []*policyObject) (*trustSet, []compileResult) {
	st := &compileState{
		keys:       make(map[string]crypto.PublicKey, len(c.keys)),
		roots:      make(map[string]root.TrustedMaterial, len(c.roots)),
		trustRoots: map[string]trustRootResult{},
	}
	t := &trustSet{byNamespace: map[string][]*compiledPolicy{}}
	results := make([]compileResult, 0, len(objs))
	for _, o := range objs {
		p, err := c.compileOne(o, st)
		results = append(results, compileResult{Object: o, Err: err})
		if o.Kind == KindImagePolicy {
			t.byNamespace[o.Namespace] = append(t.byNamespace[o.Namespace], p)
		} else {
			t.cluster = append(t.cluster, p)
		}
	}
	sortPolicies(t.cluster)
	for _, ps := range t.byNamespace {
		sortPolicies(ps)
	}
	t.summary = c.summarize(results, t, st)
	c.keys, c.roots = st.keys, st.roots
	return t, results
}

// compileOne compiles one policy. It always returns a policy: an invalid one
// carries its error in req.Err and keeps the scope it can still determine.
func (c *compiler) compileOne(o *policyObject, st *compileState) (*compiledPolicy, *InvalidPolicyError) {
	p := &compiledPolicy{req: Requirement{Policy: o.ID(), Namespaced: o.Kind == KindImagePolicy}}
	var problems []string
	if o.Kind == KindClusterImagePolicy {
		p.selector, problems = compileSelector(o)
	}
	if o.DecodeErr != nil {
		// Nothing of the spec is trustworthy: cover every image in scope.
		p.all = true
		problems = append(problems, o.DecodeErr.Error())
		return p, invalid(p, problems)
	}
	p.globs, p.all, problems = compileGlobs(o.Spec.Images, problems)
	mode, err := ParseMode(string(o.Spec.Mode))
	switch {
	case err != nil:
		problems = append(problems, err.Error())
	case o.Kind == KindImagePolicy && mode != ModeEnforce:
		problems = append(problems, fmt.Sprintf("mode %s: an ImagePolicy must use mode enforce, since a namespace policy can only add requirements; "+
			"set mode: enforce, or ask the cluster administrator for a ClusterImagePolicy in %s mode", mode, mode))
	}
	p.req.Mode = mode
	problems = c.compileVerdict(o, &p.req, st, problems)
	if len(problems) > 0 {
		return p, invalid(p, problems)
	}
	return p, nil
}

func invalid(p *compiledPolicy, problems []string) *InvalidPolicyError {
	slices.Sort(problems)
	err := &InvalidPolicyError{Policy: p.req.Policy, Problems: slices.Compact(problems)}
	p.req = Requirement{Policy: p.req.Policy, Mode: ModeEnforce, Err: err, Namespaced: p.req.Namespaced}
	return err
}

// compileSelector compiles a ClusterImagePolicy's namespaceSelector. A
// selector that does not parse covers every namespace: the scope of a broken
// policy errs on the side of denying.
func compileSelector(o *policyObject) (labels.Selector, []string) {
	if o.Selector == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(o.Selector)
	if err != nil {
		return labels.Everything(), []string{"namespaceSelector: " + err.Error()}
	}
	return sel, nil
}

// compileGlobs compiles the images. If any glob is invalid (or there is
// none) the policy's scope is unknown, so it covers every image (all=true):
// treating it as matching nothing would silently drop it.
func compileGlobs(images []v1alpha1.ImageGlob, problems []string) (globs []Glob, all bool, _ []string) {
	if len(images) == 0 {
		return nil, true, append(problems, "images: at least one glob is required")
	}
	for i, img := range images {
		g, err := CompileGlob(img.Glob)
		if err != nil {
			problems = append(problems, fmt.Sprintf("images[%d]: %v", i, err))
			all = true
			continue
		}
		globs = append(globs, g)
	}
	return globs, all, problems
}

// compileVerdict fills the static verdict or the authorities and threshold.
func (c *compiler) compileVerdict(o *policyObject, req *Requirement, st *compileState, problems []string) []string {
	spec := &o.Spec
	switch {
	case spec.Static != nil && len(spec.Authorities) > 0:
		return append(problems, "exactly one of authorities or static is required, both are set")
	case spec.Static != nil:
		if a := spec.Static.Action; a != v1alpha1.StaticPass && a != v1alpha1.StaticFail {
			return append(problems, fmt.Sprintf("static.action %q: want pass or fail", a))
		}
		if o.Kind == KindImagePolicy && spec.Static.Action == v1alpha1.StaticPass {
			return append(problems, "static.action pass: an ImagePolicy cannot admit images without a signature, since a namespace policy can only add requirements; "+
				"use authorities or static fail, or ask the cluster administrator for a ClusterImagePolicy")
		}
		req.Static = string(spec.Static.Action)
		return problems
	case len(spec.Authorities) == 0:
		return append(problems, "exactly one of authorities or static is required, neither is set")
	}
	n := len(problems)
	if spec.Threshold < 0 || int(spec.Threshold) > len(spec.Authorities) {
		problems = append(problems, fmt.Sprintf("threshold %d: want between 1 and the number of authorities (%d)", spec.Threshold, len(spec.Authorities)))
	}
	var as []authority.Authority
	seen := make(map[string]bool, len(spec.Authorities))
	for i, a := range spec.Authorities {
		switch {
		case a.Name == "":
			problems = append(problems, fmt.Sprintf("authorities[%d]: name is required", i))
		case seen[a.Name]:
			problems = append(problems, fmt.Sprintf("authorities[%d]: duplicate name %q", i, a.Name))
		}
		seen[a.Name] = true
		reqs, aproblems := compileAttestations(a)
		problems = append(problems, aproblems...)
		switch {
		case a.Key != nil && a.Keyless != nil:
			problems = append(problems, fmt.Sprintf("authority %q: exactly one of key or keyless is required, both are set", a.Name))
		case a.Keyless != nil:
			k, err := c.compileKeyless(a.Keyless, st)
			if err != nil {
				problems = append(problems, fmt.Sprintf("authority %q: %v", a.Name, err))
				continue
			}
			as = append(as, authority.Authority{Name: a.Name, Keyless: k, Attestations: reqs})
		case a.Key != nil:
			key, err := c.key(o, *a.Key, st.keys)
			if err != nil {
				problems = append(problems, fmt.Sprintf("authority %q: %v", a.Name, err))
				continue
			}
			as = append(as, authority.Authority{Name: a.Name, Key: key, Attestations: reqs})
		default:
			problems = append(problems, fmt.Sprintf("authority %q: exactly one of key or keyless is required, neither is set", a.Name))
		}
	}
	if len(problems) > n {
		return problems
	}
	set, err := authority.NewSet(int(spec.Threshold), as...)
	if err != nil { // e.g. two authorities with one key and a threshold counting both
		return append(problems, "authorities: "+err.Error())
	}
	req.Authorities = set
	return problems
}

// compileAttestations compiles an authority's attestation requirements.
// Each problem names the authority, the attestation (by index and name)
// and, for an expression that does not compile, which one and where:
// `authority "ci": attestations[0] (provenance): condition: ERROR: <input>:1:12: ...`.
func compileAttestations(a v1alpha1.Authority) ([]*attestation.Requirement, []string) {
	var reqs []*attestation.Requirement
	var problems []string
	seen := make(map[string]bool, len(a.Attestations))
	for i, at := range a.Attestations {
		where := fmt.Sprintf("authority %q: attestations[%d]", a.Name, i)
		if at.Name == "" {
			problems = append(problems, where+": name is required")
			continue
		}
		where += " (" + at.Name + ")"
		if seen[at.Name] {
			problems = append(problems, fmt.Sprintf("%s: duplicate name %q", where, at.Name))
			continue
		}
		seen[at.Name] = true
		r, err := attestation.Compile(at.Name, at.PredicateType, at.Condition, at.Message)
		if err != nil {
			// Compile's errors start with "attestation NAME: ", which where
			// already says.
			msg := strings.TrimPrefix(err.Error(), "attestation "+at.Name+": ")
			problems = append(problems, where+": "+oneLineCEL(msg))
			continue
		}
		reqs = append(reqs, r)
	}
	return reqs, problems
}

// oneLineCEL puts CEL's compile errors on one line, as the other problems
// of a policy (joined by "; " in status and denials): each error's source
// line display (" | expr" and " | ....^") becomes ` in "expr"`, the
// position being in the error already.
func oneLineCEL(msg string) string {
	var out []string
	for l := range strings.Lines(msg) {
		l = strings.TrimRight(l, "\n")
		src, isSrc := strings.CutPrefix(l, " | ")
		switch {
		case !isSrc || len(out) == 0:
			out = append(out, l)
		case strings.Trim(src, ".^ ") == "": // the caret line
		default:
			if r := []rune(src); len(r) > 120 {
				src = string(r[:120]) + "..."
			}
			out[len(out)-1] += fmt.Sprintf(" in %q", src)
		}
	}
	return strings.Join(out, "; ")
}

// key returns the parsed public key of an authority, from the cache when
// its PEM was parsed before.
func (c *compiler) key(o *policyObject, ks v1alpha1.KeySource, used map[string]crypto.PublicKey) (crypto.PublicKey, error) {
	var data string
	switch {
	case ks.Data != "" && ks.SecretRef != nil:
		return nil, fmt.Errorf("exactly one of key.data or key.secretRef is required, both are set")
	case ks.Data != "":
		data = ks.Data
	case ks.SecretRef != nil && c.structural:
		if ks.SecretRef.Name == "" || ks.SecretRef.Key == "" {
			return nil, errors.New("key.secretRef needs a name and a key")
		}
		return standIn()
	case ks.SecretRef != nil:
		d, err := c.secretKey(o, ks.SecretRef)
		if err != nil {
			return nil, err
		}
		data = d
	default:
		return nil, fmt.Errorf("exactly one of key.data or key.secretRef is required, neither is set")
	}
	if k, ok := used[data]; ok {
		return k, nil
	}
	if k, ok := c.keys[data]; ok {
		used[data] = k
		return k, nil
	}
	k, err := authority.ParsePublicKey([]byte(data))
	if err != nil {
		return nil, err
	}
	used[data] = k
	return k, nil
}

// secretKey reads a secretRef: an ImagePolicy's Secret lives in its own
// namespace, a ClusterImagePolicy's in the gate's namespace.
func (c *compiler) secretKey(o *policyObject, ref *v1alpha1.SecretKeyRef) (string, error) {
	return c.secretValue(c.secretNamespace(o), ref)
}

// secretValue reads one key of a Secret.
func (c *compiler) secretValue(ns string, ref *v1alpha1.SecretKeyRef) (string, error) {
	if c.secrets == nil {
		return "", fmt.Errorf("read secret %s/%s: no secrets available", ns, ref.Name)
	}
	data, err := c.secrets(ns, ref.Name)
	if err != nil {
		return "", fmt.Errorf("read secret %s/%s: %w", ns, ref.Name, err)
	}
	v, ok := data[ref.Key]
	if !ok {
		return "", fmt.Errorf("secret %s/%s has no key %q", ns, ref.Name, ref.Key)
	}
	return string(v), nil
}

// secretNamespace is where the Secrets of o's secretRefs live.
func (c *compiler) secretNamespace(o *policyObject) string {
	if o.Kind == KindClusterImagePolicy {
		return c.gateNamespace
	}
	return o.Namespace
}

// secretRefs lists, without duplicates, the Secrets that compiling objs
// reads, so they can be read ahead of the compilation (ClusterSource reads
// them in parallel). It may list a Secret the compilation then does not
// read, never the other way round: what it misses is read during the
// compilation.
func (c *compiler) secretRefs(objs []*policyObject) []secretName {
	seen := map[secretName]bool{}
	var refs []secretName
	for _, o := range objs {
		if o.DecodeErr != nil || o.Spec.Static != nil {
			continue
		}
		for _, a := range o.Spec.Authorities {
			if a.Key == nil {
				continue
			}
			if ref := a.Key.SecretRef; ref != nil && a.Key.Data == "" {
				k := secretName{c.secretNamespace(o), ref.Name}
				if !seen[k] {
					seen[k] = true
					refs = append(refs, k)
				}
			}
		}
	}
	return refs
}
