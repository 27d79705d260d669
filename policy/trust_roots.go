package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/policy/v1alpha1"
)

// KindTrustRoot is the kind of sigstore trust material objects.
const KindTrustRoot = "TrustRoot"

// trustRootObject is one TrustRoot as a source loaded it.
type trustRootObject struct {
	Name      string
	Spec      v1alpha1.TrustRootSpec
	DecodeErr error // the object could not be decoded; Spec is unusable
}

// trustRootResult is a TrustRoot resolved once per compilation: its trust
// material, or why it is unusable.
type trustRootResult struct {
	root authority.TrustRoot
	err  error
}

// trustRoot resolves the TrustRoot named name, once per compilation
// (results), parsing its JSON only when no earlier compilation parsed the
// same content (c.roots by digest; used collects what this compilation
// uses). Errors name the TrustRoot.
func (c *compiler) trustRoot(name string, st *compileState) (authority.TrustRoot, error) {
	if c.structural {
		return authority.TrustRoot{Name: name, Material: &root.TrustedRoot{}, Digest: "structural"}, nil
	}
	if r, ok := st.trustRoots[name]; ok {
		return r.root, r.err
	}
	tr, err := c.resolveTrustRoot(name, st)
	if err != nil {
		err = fmt.Errorf("TrustRoot %q: %w", name, err)
	}
	st.trustRoots[name] = trustRootResult{tr, err}
	return tr, err
}

func (c *compiler) resolveTrustRoot(name string, st *compileState) (authority.TrustRoot, error) {
	o, ok := c.trustRootObjs[name]
	if !ok {
		return authority.TrustRoot{}, errors.New("not found")
	}
	if o.DecodeErr != nil {
		return authority.TrustRoot{}, o.DecodeErr
	}
	var data []byte
	var err error
	switch {
	case o.Spec.TrustedRoot != nil && o.Spec.TUF == nil:
		data, err = c.trustedRootJSON(*o.Spec.TrustedRoot)
	case o.Spec.TUF != nil && o.Spec.TrustedRoot == nil:
		data, err = c.tufTrustedRoot(name, o.Spec.TUF)
	default:
		err = errors.New("exactly one of trustedRoot or tuf is required")
	}
	if err != nil {
		return authority.TrustRoot{}, err
	}
	if data == nil && c.structural {
		return authority.TrustRoot{}, nil // from a ref, not read
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	m, ok := st.roots[digest]
	if !ok {
		m, ok = c.roots[digest]
	}
	if !ok {
		tr, err := root.NewTrustedRootFromJSON(data)
		if err != nil {
			// protobuf's messages randomly use a no-break space for
			// some spaces (to discourage matching them); ours are
			// compared, logged and written to status: plain spaces.
			return authority.TrustRoot{}, fmt.Errorf("parse trusted root: %s", strings.ReplaceAll(err.Error(), "\u00a0", " "))
		}
		m = tr
	}
	st.roots[digest] = m
	return authority.TrustRoot{Name: name, Material: m, Digest: digest}, nil
}

// trustedRootJSON reads a TrustRoot's document (its trusted_root.json, or
// a TUF root.json): inline, or from a ConfigMap or Secret of the gate's
// namespace.
func (c *compiler) trustedRootJSON(src v1alpha1.TrustedRootSource) ([]byte, error) {
	n := 0
	for _, set := range []bool{src.Inline != "", src.ConfigMapRef != nil, src.SecretRef != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("trustedRoot: exactly one of inline, configMapRef or secretRef is required, %d are set", n)
	}
	if c.structural && src.Inline == "" {
		return nil, nil // a ConfigMap or Secret is not read in structural checks
	}
	switch {
	case src.Inline != "":
		return []byte(src.Inline), nil
	case src.ConfigMapRef != nil:
		ref := src.ConfigMapRef
		if c.configMaps == nil {
			return nil, fmt.Errorf("read configmap %s/%s: no configmaps available", c.gateNamespace, ref.Name)
		}
		data, err := c.configMaps(c.gateNamespace, ref.Name)
		if err != nil {
			return nil, fmt.Errorf("read configmap %s/%s: %w", c.gateNamespace, ref.Name, err)
		}
		v, ok := data[ref.Key]
		if !ok {
			return nil, fmt.Errorf("configmap %s/%s has no key %q", c.gateNamespace, ref.Name, ref.Key)
		}
		return v, nil
	default:
		s, err := c.secretValue(c.gateNamespace, src.SecretRef)
		return []byte(s), err
	}
}

// compileKeyless compiles a keyless authority against the TrustRoots.
func (c *compiler) compileKeyless(k *v1alpha1.KeylessAuthority, st *compileState) (*authority.Keyless, error) {
	if k.TrustRoot == "" {
		return nil, errors.New("keyless.trustRoot is required: no trust root is assumed")
	}
	var ids []authority.Identity
	var errs []error
	for i, id := range k.Identities {
		got, err := authority.NewIdentity(id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyless.identities[%d]: %w", i, err))
			continue
		}
		ids = append(ids, got)
	}
	tr, err := c.trustRoot(k.TrustRoot, st)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return authority.NewKeyless(tr, ids, k.Extensions)
}

// namedTrustRoots lists, once each, the decodable TrustRoots that objs'
// keyless authorities name (those that do not exist or do not decode are
// left to the compilation to report).
func (c *compiler) namedTrustRoots(objs []*policyObject) []*trustRootObject {
	var out []*trustRootObject
	seen := map[string]bool{}
	for _, o := range objs {
		if o.DecodeErr != nil || o.Spec.Static != nil {
			continue
		}
		for _, a := range o.Spec.Authorities {
			if a.Keyless == nil || seen[a.Keyless.TrustRoot] {
				continue
			}
			seen[a.Keyless.TrustRoot] = true
			if tr, ok := c.trustRootObjs[a.Keyless.TrustRoot]; ok && tr.DecodeErr == nil {
				out = append(out, tr)
			}
		}
	}
	return out
}

// trustRootRefs lists, without duplicates, the Secrets and ConfigMaps (all
// in the gate's namespace) of the TrustRoots that objs' keyless
// authorities name (a trusted_root.json, or a TUF TrustRoot's initial
// root), for reading ahead as secretRefs does.
func (c *compiler) trustRootRefs(objs []*policyObject) (secrets, configMaps []secretName) {
	seenS, seenC := map[secretName]bool{}, map[secretName]bool{}
	for _, tr := range c.namedTrustRoots(objs) {
		src := tr.Spec.TrustedRoot
		if tr.Spec.TUF != nil {
			src = &tr.Spec.TUF.Root
		}
		if src == nil || src.Inline != "" {
			continue
		}
		if ref := src.SecretRef; ref != nil {
			if k := (secretName{c.gateNamespace, ref.Name}); !seenS[k] {
				seenS[k] = true
				secrets = append(secrets, k)
			}
		}
		if ref := src.ConfigMapRef; ref != nil {
			if k := (secretName{c.gateNamespace, ref.Name}); !seenC[k] {
				seenC[k] = true
				configMaps = append(configMaps, k)
			}
		}
	}
	return secrets, configMaps
}
