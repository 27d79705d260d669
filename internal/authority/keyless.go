package authority

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// Keyless trusts short-lived certificates instead of a key: a signature
// counts when its certificate was issued by a Fulcio CA of TrustRoot to
// one of Identities, carries every one of Extensions, and was logged or
// timestamped by TrustRoot at a time the chain was valid. Built by
// NewKeyless; immutable.
type Keyless struct {
	TrustRoot  TrustRoot
	Identities []Identity        // any one must match
	Extensions map[string]string // Fulcio certificate extensions (ExtensionNames), exact match; all must match
	id         string
}

// TrustRoot is named sigstore trust material: the Fulcio CAs, transparency
// logs, CT logs and TSAs of a trusted_root.json, each with its validity
// window.
type TrustRoot struct {
	Name     string
	Material root.TrustedMaterial
	// Digest identifies the content (hex SHA-256 of the trusted_root.json
	// as given): a verdict cached under one content is not reused after
	// the TrustRoot changes.
	Digest string
}

// Identity is one certificate identity: the OIDC issuer and the subject
// (the certificate's SAN: a workflow URI, an e-mail), each given exactly
// or as an RE2 regular expression, which must match the whole value
// (write ^…$ anyway: it documents the intent).
type Identity struct {
	Issuer, IssuerRegExp   string
	Subject, SubjectRegExp string
	issuer, subject        *regexp.Regexp
}

// ExtensionNames are the Fulcio certificate extensions a Keyless authority
// can require, by the names sigstore uses (fulcio certificate OIDs
// 1.3.6.1.4.1.57264.1.*).
var ExtensionNames = []string{
	"githubWorkflowTrigger", "githubWorkflowSHA", "githubWorkflowName", "githubWorkflowRepository", "githubWorkflowRef",
	"buildSignerURI", "buildSignerDigest", "runnerEnvironment",
	"sourceRepositoryURI", "sourceRepositoryDigest", "sourceRepositoryRef", "sourceRepositoryIdentifier",
	"sourceRepositoryOwnerURI", "sourceRepositoryOwnerIdentifier",
	"buildConfigURI", "buildConfigDigest", "buildTrigger", "runInvocationURI", "sourceRepositoryVisibilityAtSigning",
}

// NewIdentity checks and compiles an identity: exactly one of issuer and
// issuerRegExp, exactly one of subject and subjectRegExp. A regular
// expression that does not compile is an error naming the field and the
// part that is wrong.
func NewIdentity(issuer, issuerRegExp, subject, subjectRegExp string) (Identity, error) {
	id := Identity{Issuer: issuer, IssuerRegExp: issuerRegExp, Subject: subject, SubjectRegExp: subjectRegExp}
	var err error
	if id.issuer, err = exactOrRegExp("issuer", issuer, issuerRegExp); err != nil {
		return Identity{}, err
	}
	if id.subject, err = exactOrRegExp("subject", subject, subjectRegExp); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// exactOrRegExp compiles the regular expression of a field given one way
// or the other; nil for an exact value.
func exactOrRegExp(field, exact, expr string) (*regexp.Regexp, error) {
	switch {
	case exact != "" && expr != "":
		return nil, fmt.Errorf("set %s or %sRegExp, not both", field, field)
	case exact == "" && expr == "":
		return nil, fmt.Errorf("set %s or %sRegExp", field, field)
	case exact != "":
		return nil, nil
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%sRegExp %q: %s: %q", field, expr, se.Code, se.Expr)
		}
		return nil, fmt.Errorf("%sRegExp %q: %w", field, expr, err)
	}
	return re, nil
}

// Matches reports whether a certificate's subject and issuer are this
// identity's.
func (i Identity) Matches(subject, issuer string) bool {
	return match(i.Issuer, i.issuer, issuer) && match(i.Subject, i.subject, subject)
}

func match(exact string, re *regexp.Regexp, got string) bool {
	if re != nil {
		return re.MatchString(got)
	}
	return got == exact
}

// String describes the identity the way messages name it:
// `subject "https://…" from issuer "https://…"`, `subject ~ "^https://…"`.
func (i Identity) String() string {
	return describe("subject", i.Subject, i.SubjectRegExp) + " from " + describe("issuer", i.Issuer, i.IssuerRegExp)
}

func describe(field, exact, expr string) string {
	if expr != "" {
		return field + " ~ " + strconv.Quote(expr)
	}
	return field + " " + strconv.Quote(exact)
}

// NewKeyless checks a keyless authority: trust material, at least one
// identity (from NewIdentity), and extensions among ExtensionNames with
// non-empty values.
func NewKeyless(tr TrustRoot, identities []Identity, extensions map[string]string) (*Keyless, error) {
	if tr.Name == "" || tr.Material == nil || tr.Digest == "" {
		return nil, errors.New("keyless: no trust root")
	}
	if len(identities) == 0 {
		return nil, errors.New("keyless: no identities: list at least one issuer and subject")
	}
	for i, id := range identities {
		if (id.Issuer == "") == (id.issuer == nil) || (id.Subject == "") == (id.subject == nil) {
			return nil, fmt.Errorf("keyless: identity %d was not made by NewIdentity", i)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(extensions)) {
		if !slices.Contains(ExtensionNames, name) {
			return nil, fmt.Errorf("keyless: unknown certificate extension %q; known: %s", name, strings.Join(ExtensionNames, ", "))
		}
		if extensions[name] == "" {
			return nil, fmt.Errorf("keyless: certificate extension %q: empty value", name)
		}
	}
	k := &Keyless{TrustRoot: tr, Identities: slices.Clone(identities), Extensions: maps.Clone(extensions)}
	k.id = k.identity()
	return k, nil
}

// identity encodes everything that decides what the authority accepts:
// the trust root's content, the identities (as a set) and the extensions.
// Names are excluded, as for keys.
func (k *Keyless) identity() string {
	parts := []string{"trustRoot", k.TrustRoot.Digest}
	var ids []string
	for _, id := range k.Identities {
		ids = append(ids, strings.Join([]string{id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp}, "\x00"))
	}
	slices.Sort(ids)
	parts = append(parts, slices.Compact(ids)...)
	for _, name := range slices.Sorted(maps.Keys(k.Extensions)) {
		parts = append(parts, "ext", name, k.Extensions[name])
	}
	h := sha256.New()
	var buf [8]byte
	for _, p := range parts {
		h.Write(binary.BigEndian.AppendUint64(buf[:0], uint64(len(p))))
		h.Write([]byte(p))
	}
	return "keyless:" + hex.EncodeToString(h.Sum(nil))
}

// Match checks a verified certificate's subject, issuer and extensions
// (by ExtensionNames) against the authority. The error says what did not
// match, in words safe to show: certificate values are quoted.
func (k *Keyless) Match(subject, issuer string, extensions map[string]string) error {
	matched := false
	for _, id := range k.Identities {
		if id.Matches(subject, issuer) {
			matched = true
			break
		}
	}
	if !matched {
		want := make([]string, len(k.Identities))
		for i, id := range k.Identities {
			want[i] = id.String()
		}
		return fmt.Errorf("certificate subject %q from issuer %q matches none of: %s", subject, issuer, strings.Join(want, "; "))
	}
	for _, name := range slices.Sorted(maps.Keys(k.Extensions)) {
		if got := extensions[name]; got != k.Extensions[name] {
			return fmt.Errorf("certificate extension %s is %q, want %q", name, got, k.Extensions[name])
		}
	}
	return nil
}
