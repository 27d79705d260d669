package convert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// convertPCTrustRoot converts a policy-controller TrustRoot: a TUF remote
// becomes spec.tuf, serialized sigstoreKeys an inline trusted_root.json.
func convertPCTrustRoot(d document, o Options) ([]Object, []Problem) {
	c := &pcConv{d: d, o: o}
	if !c.checkVersion("v1alpha1") {
		return nil, c.problems
	}
	spec, _ := d.obj["spec"].(map[string]any)
	c.unknown("spec", spec, "remote", "repository", "sigstoreKeys")
	out := v1alpha1.TrustRoot{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "TrustRoot"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name},
	}
	if _, ok := spec["repository"]; ok {
		c.report("spec.repository", "a serialized TUF repository cannot be converted; the TrustRoot is not written: put the repository's trusted_root.json target in a ConfigMap and name it in spec.trustedRoot.configMapRef")
		return nil, c.problems
	}
	if r, ok := spec["remote"].(map[string]any); ok {
		out.Spec.TUF = c.remote(r)
	} else if k, ok := spec["sigstoreKeys"].(map[string]any); ok {
		out.Spec.TrustedRoot = c.sigstoreKeys(k)
	} else {
		c.report("spec", "none of remote, repository or sigstoreKeys; the TrustRoot is not written")
		return nil, c.problems
	}
	if out.Spec.TUF == nil && out.Spec.TrustedRoot == nil {
		return nil, c.problems
	}
	return []Object{{From: d.Source, Obj: &out}}, c.problems
}

// mirrorURL is what signgate accepts as a TUF mirror.
var mirrorURL = regexp.MustCompile(`^https?://[^\s]+$`)

// remote converts spec.remote (a TUF repository); nil when it cannot be
// (reported).
func (c *pcConv) remote(r map[string]any) *v1alpha1.TUFSource {
	c.unknown("spec.remote", r, "mirror", "root", "trustedRootTarget")
	mirror, _ := r["mirror"].(string)
	if !mirrorURL.MatchString(mirror) {
		c.report("spec.remote.mirror", "%q is not an http(s) URL; the TrustRoot is not written", mirror)
		return nil
	}
	if t, _ := r["trustedRootTarget"].(string); t != "" && t != "trusted_root.json" {
		c.report("spec.remote.trustedRootTarget", "signgate reads the target trusted_root.json, not %q; the TrustRoot is not written", t)
		return nil
	}
	s, _ := r["root"].(string)
	rootJSON, err := jsonOrBase64JSON(s)
	if err != nil {
		c.report("spec.remote.root", "%v; the TrustRoot is not written", err)
		return nil
	}
	return &v1alpha1.TUFSource{Mirror: mirror, Root: v1alpha1.TrustedRootSource{Inline: string(rootJSON)}}
}

// jsonOrBase64JSON returns a JSON document given as it is or base64
// encoded (policy-controller has had both).
func jsonOrBase64JSON(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if json.Valid([]byte(s)) {
		return []byte(s), nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err == nil && json.Valid(b) {
		return b, nil
	}
	return nil, errors.New("not a JSON document, nor a base64-encoded one")
}

// trustedRoot is the JSON form of a sigstore trusted_root.json (the
// protobuf-specs TrustedRoot message), as far as written here.
type trustedRoot struct {
	MediaType              string   `json:"mediaType"`
	Tlogs                  []trTlog `json:"tlogs,omitempty"`
	CertificateAuthorities []trCA   `json:"certificateAuthorities,omitempty"`
	Ctlogs                 []trTlog `json:"ctlogs,omitempty"`
	TimestampAuthorities   []trCA   `json:"timestampAuthorities,omitempty"`
}

type trTlog struct {
	BaseURL       string      `json:"baseUrl"`
	HashAlgorithm string      `json:"hashAlgorithm"`
	PublicKey     trPublicKey `json:"publicKey"`
	LogID         trLogID     `json:"logId"`
}

type trPublicKey struct {
	RawBytes   []byte     `json:"rawBytes"`
	KeyDetails string     `json:"keyDetails"`
	ValidFor   trValidFor `json:"validFor"`
}

type trValidFor struct {
	Start string `json:"start"`
}

type trLogID struct {
	KeyID []byte `json:"keyId"`
}

type trCA struct {
	Subject   trSubject   `json:"subject"`
	URI       string      `json:"uri,omitempty"`
	CertChain trCertChain `json:"certChain"`
}

type trSubject struct {
	Organization string `json:"organization,omitempty"`
	CommonName   string `json:"commonName,omitempty"`
}

type trCertChain struct {
	Certificates []trCert `json:"certificates"`
}

type trCert struct {
	RawBytes []byte `json:"rawBytes"`
}

// unboundedStart is the validity start written for a transparency log key:
// policy-controller gives none and checks none, and a trusted_root.json
// needs one.
const unboundedStart = "1970-01-01T00:00:00Z"

// sigstoreKeys converts serialized sigstore keys into an inline
// trusted_root.json; nil when they cannot be (reported).
func (c *pcConv) sigstoreKeys(k map[string]any) *v1alpha1.TrustedRootSource {
	const p = "spec.sigstoreKeys"
	// The field names changed between policy-controller releases.
	c.unknown(p, k, "certificateAuthority", "certificateAuthorities", "tLog", "tLogs", "ctLog", "ctLogs", "timestampAuthorities")
	tr := trustedRoot{MediaType: root.TrustedRootMediaType01}
	var errs []error
	tr.CertificateAuthorities = c.cas(p, k, &errs, "certificateAuthority", "certificateAuthorities")
	tr.TimestampAuthorities = c.cas(p, k, &errs, "timestampAuthorities")
	tr.Tlogs = c.tlogs(p, k, &errs, "tLog", "tLogs")
	tr.Ctlogs = c.tlogs(p, k, &errs, "ctLog", "ctLogs")
	if len(errs) > 0 {
		return nil
	}
	b, err := json.MarshalIndent(tr, "", "  ")
	if err == nil {
		_, err = root.NewTrustedRootFromJSON(b)
	}
	if err != nil {
		c.report(p, "the trusted_root.json written from these keys does not parse: %v; the TrustRoot is not written", err)
		return nil
	}
	if len(tr.Tlogs)+len(tr.Ctlogs) > 0 {
		c.report(p, "transparency and CT log keys have no validity period in policy-controller; written as valid from %s on, as unbounded as the source", unboundedStart)
	}
	return &v1alpha1.TrustedRootSource{Inline: string(b) + "\n"}
}

// listOf returns the list under the first of names present, and its name.
func listOf(m map[string]any, names ...string) ([]any, string) {
	for _, n := range names {
		if l, ok := m[n].([]any); ok {
			return l, n
		}
	}
	return nil, names[0]
}

// cas converts certificate authorities (Fulcio or timestamping).
func (c *pcConv) cas(p string, k map[string]any, errs *[]error, names ...string) []trCA {
	list, name := listOf(k, names...)
	var out []trCA
	for i, it := range list {
		path := fmt.Sprintf("%s.%s[%d]", p, name, i)
		m, _ := it.(map[string]any)
		c.unknown(path, m, "subject", "uri", "certChain")
		subj, _ := m["subject"].(map[string]any)
		c.unknown(path+".subject", subj, "organization", "commonName")
		ca := trCA{URI: str(m, "uri"), Subject: trSubject{Organization: str(subj, "organization"), CommonName: str(subj, "commonName")}}
		ders, err := pemBlocks(str(m, "certChain"), "CERTIFICATE")
		if err != nil {
			c.fail(path+".certChain", err, errs)
			continue
		}
		for _, der := range ders {
			ca.CertChain.Certificates = append(ca.CertChain.Certificates, trCert{RawBytes: der})
		}
		out = append(out, ca)
	}
	return out
}

// tlogs converts transparency or CT log instances.
func (c *pcConv) tlogs(p string, k map[string]any, errs *[]error, names ...string) []trTlog {
	list, name := listOf(k, names...)
	var out []trTlog
	for i, it := range list {
		path := fmt.Sprintf("%s.%s[%d]", p, name, i)
		m, _ := it.(map[string]any)
		c.unknown(path, m, "baseURL", "hashAlgorithm", "publicKey", "logID")
		if h := str(m, "hashAlgorithm"); h != "" && !strings.EqualFold(strings.ReplaceAll(h, "-", ""), "sha256") {
			c.fail(path+".hashAlgorithm", fmt.Errorf("hash algorithm %q is not sha-256", h), errs)
			continue
		}
		ders, err := pemBlocks(str(m, "publicKey"), "PUBLIC KEY")
		if err == nil && len(ders) != 1 {
			err = errors.New("not exactly one PEM PUBLIC KEY block")
		}
		var details string
		if err == nil {
			details, err = keyDetails(ders[0])
		}
		if err != nil {
			c.fail(path+".publicKey", err, errs)
			continue
		}
		// The log ID is the SHA-256 of the key, however the source names it.
		id := sha256.Sum256(ders[0])
		out = append(out, trTlog{
			BaseURL: str(m, "baseURL"), HashAlgorithm: "SHA2_256",
			PublicKey: trPublicKey{RawBytes: ders[0], KeyDetails: details, ValidFor: trValidFor{Start: unboundedStart}},
			LogID:     trLogID{KeyID: id[:]},
		})
	}
	return out
}

// fail reports a field that makes the TrustRoot unconvertible.
func (c *pcConv) fail(path string, err error, errs *[]error) {
	c.report(path, "%v; the TrustRoot is not written", err)
	*errs = append(*errs, err)
}

// str is m[k] as a string ("" when absent).
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// pemBlocks decodes base64-encoded PEM (policy-controller's []byte
// fields) into the DER of its blocks of type typ.
func pemBlocks(b64, typ string) ([][]byte, error) {
	data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	var out [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != typ {
			return nil, fmt.Errorf("PEM block %q, want %q", b.Type, typ)
		}
		out = append(out, b.Bytes)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM %s block", typ)
	}
	return out, nil
}

// keyDetails is the trusted_root.json key type of a PKIX public key.
func keyDetails(der []byte) (string, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return "", fmt.Errorf("parse public key: %w", err)
	}
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "PKIX_ECDSA_P256_SHA_256", nil
		case elliptic.P384():
			return "PKIX_ECDSA_P384_SHA_384", nil
		case elliptic.P521():
			return "PKIX_ECDSA_P521_SHA_512", nil
		}
	case *rsa.PublicKey:
		switch k.Size() * 8 {
		case 2048:
			return "PKIX_RSA_PKCS1V15_2048_SHA256", nil
		case 3072:
			return "PKIX_RSA_PKCS1V15_3072_SHA256", nil
		case 4096:
			return "PKIX_RSA_PKCS1V15_4096_SHA256", nil
		}
	case ed25519.PublicKey:
		return "PKIX_ED25519", nil
	}
	return "", fmt.Errorf("unsupported public key type %T", k)
}
