// Package bundle verifies one Sigstore bundle (a cosign/sigstore
// "bundle.sigstore.json") over one artifact against a trusted root, on
// sigstore-go's pkg/verify. It backs `signgate verify-bundle` and is run
// against the public sigstore-conformance bundle-verify cases
// (testdata/conformance).
//
// The rules, keyless (Policy.Identity or Policy.Match):
//   - the leaf certificate chains to a Fulcio CA of the trusted root and
//     every certificate of the chain is valid at the signing time;
//   - the signing time comes only from verified sources: a transparency log
//     entry's integrated time (SET or inclusion proof verified against a log
//     of the trusted root) or an RFC 3161 timestamp verified against a TSA of
//     the trusted root, never the current time; at least one is required
//     (Rekor v2 entries carry no integrated time, so they need a TSA
//     timestamp);
//   - at least one transparency log entry, for this signature, certificate
//     and artifact, when the trusted root lists transparency logs (one
//     without logs describes a deployment without any: the signing time
//     then comes from an RFC 3161 timestamp);
//   - SCTs verified when the trusted root has CT logs;
//   - SAN and OIDC issuer matched exactly (no regular expressions), or,
//     with Policy.Match, by the caller's function over the verified SAN,
//     issuer and Fulcio extensions (sigstore-go checks chain, logs and
//     timestamps without an identity; Match then decides).
//
// With a key (Policy.Key) no timestamp and no log entry is required; log
// entries present are still verified. The key must verify the signature. A
// bundle that carries a certificate is accepted with a key only if the
// certificate's public key is that key, and the certificate must then pass
// the keyless checks above except the identity match.
package bundle

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	intotov1 "github.com/in-toto/attestation/go/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Artifact is what the bundle must be a signature over: the artifact's bytes
// or, when Data is nil, its SHA-256 digest.
type Artifact struct {
	Data   []byte
	SHA256 []byte // 32 bytes; used only when Data is nil
}

// Identity is the keyless signer: exact certificate SAN and exact OIDC issuer.
type Identity struct {
	SAN    string
	Issuer string
}

// Policy says who must have signed: exactly one of Key, Identity and
// Match.
type Policy struct {
	Key      crypto.PublicKey
	Identity *Identity
	// Match decides a keyless signer by its verified certificate: the SAN,
	// the OIDC issuer and the Fulcio extensions. It runs only after the
	// chain, logs and timestamps verified; an error rejects the bundle and
	// is wrapped in a *MatchError.
	Match func(subject, issuer string, ext certificate.Extensions) error
}

// MatchError is Policy.Match's rejection: the certificate verified but
// its identity is not the one wanted.
type MatchError struct{ Err error }

func (e *MatchError) Error() string { return e.Err.Error() }
func (e *MatchError) Unwrap() error { return e.Err }

// Why a keyless bundle was rejected, beside ErrNotVerified: classified
// from the first failing step, for messages.
var (
	// ErrUntrustedCertificate: the certificate does not chain to a Fulcio
	// CA of the trusted root at any time of its validity.
	ErrUntrustedCertificate = errors.New("certificate not issued by a Fulcio CA of the trusted root")
	// ErrTransparencyLog: no transparency log entry verified.
	ErrTransparencyLog = errors.New("no verified transparency log entry")
	// ErrTimestamp: no verified observer timestamp (log integrated time or
	// RFC 3161 timestamp) at which the certificate was valid.
	ErrTimestamp = errors.New("no verified signing time")
)

// Result is what was verified.
type Result struct {
	// SAN and Issuer of the signing certificate; empty for a key signature.
	SAN    string
	Issuer string
	// Timestamps are the verified signing times (log integrated times and
	// RFC 3161 timestamps); empty for a key signature without any.
	Timestamps []time.Time
	// Keyed is true when the bundle was verified with Policy.Key.
	Keyed bool
	// Extensions are the signing certificate's Fulcio extensions (zero for
	// a key signature).
	Extensions certificate.Extensions
	// Statement is the in-toto statement of a DSSE bundle (nil for a
	// message signature).
	Statement *intotov1.Statement
}

// ErrNotVerified wraps every verification failure, as opposed to a bad
// policy or input.
var ErrNotVerified = errors.New("not verified")

// Parse parses a bundle's JSON (any supported media type; sigstore-go
// validates its shape).
func Parse(data []byte) (*bundle.Bundle, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("parse bundle: %w", err)
	}
	return &b, nil
}

// ParseTrustedRoot parses a trusted_root.json.
func ParseTrustedRoot(data []byte) (*root.TrustedRoot, error) {
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		// protobuf randomly uses a no-break space for some spaces.
		return nil, fmt.Errorf("parse trusted root: %s", strings.ReplaceAll(err.Error(), "\u00a0", " "))
	}
	return tr, nil
}

// Verify verifies entity (a *bundle.Bundle) as a signature over artifact by
// the signer of policy against trustedRoot. An error that wraps
// ErrNotVerified means the bundle was rejected; any other error is a bad
// policy or artifact.
func Verify(entity verify.SignedEntity, artifact Artifact, trustedRoot root.TrustedMaterial, policy Policy) (Result, error) {
	if entity == nil {
		return Result{}, errors.New("no bundle")
	}
	if trustedRoot == nil {
		return Result{}, errors.New("no trusted root")
	}
	n := 0
	for _, set := range []bool{policy.Key != nil, policy.Identity != nil, policy.Match != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return Result{}, errors.New("policy: want exactly one of a key, an identity and a match function")
	}
	if policy.Identity != nil && (policy.Identity.SAN == "" || policy.Identity.Issuer == "") {
		return Result{}, errors.New("policy: identity needs both the certificate identity and the OIDC issuer")
	}
	artifactOpt, err := artifactPolicy(artifact)
	if err != nil {
		return Result{}, err
	}
	vc, err := entity.VerificationContent()
	if err != nil {
		return Result{}, notVerified(err)
	}
	leaf := vc.Certificate()

	var (
		material  = trustedRoot
		vopts     []verify.VerifierOption
		popts     []verify.PolicyOption
		keyedCert bool
	)
	switch {
	case policy.Key != nil && leaf == nil:
		// A key signature: the key is the trust anchor, no timestamp or
		// log entry is required. sigstore-go looks the key up by the
		// bundle's hint; the only key trusted here is the given one,
		// whatever the hint says.
		v, err := signature.LoadDefaultVerifier(policy.Key)
		if err != nil {
			return Result{}, fmt.Errorf("policy: key: %w", err)
		}
		key := root.NewExpiringKey(v, time.Time{}, time.Time{})
		material = root.TrustedMaterialCollection{trustedRoot, root.NewTrustedPublicKeyMaterial(
			func(string) (root.TimeConstrainedVerifier, error) { return key, nil })}
		vopts = append(vopts, verify.WithNoObserverTimestamps())
		// Parsed here only: each parse of a Rekor v1 entry re-checks its
		// signature, and sigstore-go parses them again when verifying.
		entries, err := entity.TlogEntries()
		if err != nil {
			return Result{}, notVerified(err)
		}
		if len(entries) > 0 {
			vopts = append(vopts, verify.WithTransparencyLog(len(entries)))
		}
		popts = append(popts, verify.WithKey())
	case policy.Key != nil:
		// A certificate bundle verified with a key: only if the
		// certificate holds that key; the certificate is then checked
		// like a keyless one, the key standing in for the identity.
		if err := cryptoutils.EqualKeys(policy.Key, leaf.PublicKey); err != nil {
			return Result{}, notVerified(errors.New("the bundle's certificate does not hold the given key"))
		}
		keyedCert = true
		vopts = keylessOptions(trustedRoot)
		popts = append(popts, verify.WithoutIdentitiesUnsafe())
	case policy.Match != nil:
		if leaf == nil {
			return Result{}, notVerified(errors.New("bundle is signed with a key, not a certificate: pass the key"))
		}
		vopts = keylessOptions(trustedRoot)
		popts = append(popts, verify.WithoutIdentitiesUnsafe())
	default:
		if leaf == nil {
			return Result{}, notVerified(errors.New("bundle is signed with a key, not a certificate: pass the key"))
		}
		id, err := verify.NewShortCertificateIdentity(policy.Identity.Issuer, "", policy.Identity.SAN, "")
		if err != nil {
			return Result{}, fmt.Errorf("policy: %w", err)
		}
		vopts = keylessOptions(trustedRoot)
		popts = append(popts, verify.WithCertificateIdentity(id))
	}

	v, err := verify.NewVerifier(material, vopts...)
	if err != nil {
		return Result{}, fmt.Errorf("verifier: %w", err)
	}
	res, err := v.Verify(entity, verify.NewPolicy(artifactOpt, popts...))
	if err != nil {
		if leaf != nil && !keyedCert && policy.Key == nil {
			return Result{}, notVerified(classify(err, leaf, trustedRoot))
		}
		return Result{}, notVerified(err)
	}
	out := Result{Keyed: policy.Key != nil, Statement: res.Statement}
	for _, ts := range res.VerifiedTimestamps {
		out.Timestamps = append(out.Timestamps, ts.Timestamp)
	}
	if res.Signature != nil && res.Signature.Certificate != nil {
		out.SAN = res.Signature.Certificate.SubjectAlternativeName
		out.Issuer = res.Signature.Certificate.Issuer
		out.Extensions = res.Signature.Certificate.Extensions
	}
	if policy.Match != nil {
		if res.Signature == nil || res.Signature.Certificate == nil {
			return Result{}, notVerified(errors.New("no certificate summary"))
		}
		if err := policy.Match(out.SAN, out.Issuer, out.Extensions); err != nil {
			return Result{}, notVerified(&MatchError{Err: err})
		}
	}
	if !keyedCert && policy.Identity != nil && (out.SAN != policy.Identity.SAN || out.Issuer != policy.Identity.Issuer) {
		// sigstore-go matched already; this is a second look, not a rule.
		return Result{}, notVerified(errors.New("certificate identity mismatch"))
	}
	return out, nil
}

// keylessOptions are the verifier options for a certificate signature:
// at least one verified observer timestamp (log integrated time or
// RFC 3161 timestamp) as the only source of the signing time; at least one
// log entry when the trusted root knows transparency logs, and SCTs when
// it knows CT logs. A trusted root without logs is a deployment that has
// none (Fulcio and a TSA only): its signatures carry no entry to verify,
// and their signing time must then come from a timestamp authority.
func keylessOptions(tm root.TrustedMaterial) []verify.VerifierOption {
	opts := []verify.VerifierOption{verify.WithObserverTimestamps(1)}
	if len(tm.RekorLogs()) > 0 {
		opts = append(opts, verify.WithTransparencyLog(1))
	}
	if len(tm.CTLogs()) > 0 {
		opts = append(opts, verify.WithSignedCertificateTimestamps(1))
	}
	return opts
}

// classify names the step a keyless verification failed at, keeping
// sigstore-go's error: a certificate that chains to no Fulcio CA of the
// trusted root at either end of its validity is untrusted whatever else
// failed; otherwise the log and timestamp steps are told apart by
// sigstore-go's messages. Only the wording depends on this: the bundle
// is rejected either way.
func classify(err error, leaf *x509.Certificate, tm root.TrustedMaterial) error {
	trusted := false
	for _, ca := range tm.FulcioCertificateAuthorities() {
		for _, at := range []time.Time{leaf.NotBefore, leaf.NotAfter} {
			if _, verr := ca.Verify(leaf, at); verr == nil {
				trusted = true
			}
		}
	}
	msg := err.Error()
	switch {
	case !trusted:
		return fmt.Errorf("%w: %w", ErrUntrustedCertificate, err)
	case strings.Contains(msg, "integrated time outside certificate validity"):
		// A verified log entry whose time the certificate was not valid at.
		return fmt.Errorf("%w: %w", ErrTimestamp, err)
	case strings.HasPrefix(msg, "failed to verify log inclusion"):
		return fmt.Errorf("%w: %w", ErrTransparencyLog, err)
	case strings.HasPrefix(msg, "failed to verify timestamps"), strings.HasPrefix(msg, "failed to verify leaf certificate"):
		return fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	return err
}

func artifactPolicy(a Artifact) (verify.ArtifactPolicyOption, error) {
	if a.Data != nil {
		return verify.WithArtifact(bytes.NewReader(a.Data)), nil
	}
	if len(a.SHA256) != sha256.Size {
		return nil, fmt.Errorf("artifact: want the bytes or a %d-byte SHA-256 digest, got %d bytes", sha256.Size, len(a.SHA256))
	}
	return verify.WithArtifactDigest("sha256", a.SHA256), nil
}

func notVerified(err error) error { return fmt.Errorf("%w: %w", ErrNotVerified, err) }
