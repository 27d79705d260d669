package verifier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// NotVerifiedError is a definite answer: the digest does not carry enough
// valid signatures from the authority set (no signatures, none valid for
// these keys, a payload naming another digest, or too few authorities).
// It is cached for Options.FailureTTL.
type NotVerifiedError struct {
	Digest  name.Digest
	Reason  string   // short, e.g. "no signatures found"
	Details []string // one line per rejected signature, sorted
	// AccessDenied: the registry answered 401 or 403, so the signatures
	// could not be read with the gate's credentials (or Credential's).
	// The fix is read access, not a signature.
	AccessDenied bool
	// Credential names the caller's credentials the registry denied
	// (Credential.Name, VerifyWith); "" for the gate's own.
	Credential string
	// Refused: one of the verifier's own rules stopped the reads of the
	// signatures (Reason "signatures could not be read"), e.g. the network
	// guard (Refused.Guard). The fix is the gate's configuration, not a
	// signature. Shared, not copied, by clone: treat it as read-only.
	Refused *RefusedError
	// Attestation: signatures verified, but an authority's required
	// attestations were missing or did not satisfy their conditions
	// (Reason names the attestation and why). The fix is an attestation,
	// not a signature.
	Attestation bool
}

func (e *NotVerifiedError) Error() string {
	msg := fmt.Sprintf("verify %s: %s", e.Digest, e.Reason)
	if len(e.Details) > 0 {
		msg += " (" + strings.Join(e.Details, "; ") + ")"
	}
	return msg
}

// clone returns a copy callers may keep and modify without touching the
// cached value.
func (e *NotVerifiedError) clone() *NotVerifiedError {
	c := *e
	c.Details = append([]string(nil), e.Details...)
	return &c
}

// UndecidedError is a transient failure: timeout, connection refused,
// 5xx, 429, or an internal error (a recovered panic) while reading what a
// registry returned. The answer is unknown; callers fail closed and
// retry. It is never cached.
type UndecidedError struct {
	Op  string // "resolve" | "verify"
	Ref string
	// Reason says what went wrong in a short, stable phrase of the
	// verifier's own, never a registry's text, written to follow the
	// registry's name: "timed out", "request cancelled", "unreachable
	// (connection refused)", "unreachable", "answered HTTP 503", "gave an
	// answer signgate could not use", or for a recovered panic "gave an
	// answer signgate could not use (an internal error; please report
	// it)"; for a TLS certificate that did not verify, "failed TLS
	// verification: the certificate of HOST ..." naming the host and,
	// for an unknown authority, registry.certificateAuthorities.
	Reason string
	Err    error
}

// reasonInternal is the Reason of an UndecidedError whose work panicked:
// a bug in signgate or a library, set off by what a registry returned.
const reasonInternal = "gave an answer signgate could not use (an internal error; please report it)"

// reasonUnusable is what the verifier says of an answer it cannot
// classify any better.
const reasonUnusable = "gave an answer signgate could not use"

func (e *UndecidedError) Error() string {
	if errors.Is(e.Err, errInternal) {
		return fmt.Sprintf("%s %s: undecided: %v", e.Op, e.Ref, e.Err)
	}
	return fmt.Sprintf("%s %s: undecided, registry trouble (retry later): %v", e.Op, e.Ref, e.Err)
}

func (e *UndecidedError) Unwrap() error { return e.Err }

// Problem returns Reason, or a generic phrase when it is empty. It never
// contains a registry's text.
func (e *UndecidedError) Problem() string {
	if e.Reason == "" {
		return reasonUnusable
	}
	return e.Reason
}

// IsUndecided reports whether err (or anything it wraps) is an
// *UndecidedError.
func IsUndecided(err error) bool {
	var u *UndecidedError
	return errors.As(err, &u)
}

// NotFoundError is a definite failure of Resolve: the registry answered
// 404, there is no such tag or repository.
type NotFoundError struct {
	Op  string // "resolve"
	Ref string
	Err error
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s %s: tag not found in the registry: %v", e.Op, e.Ref, e.Err)
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// Problem says, in the verifier's own words, what went wrong.
func (e *NotFoundError) Problem() string { return "not found" }

// AccessDeniedError is a definite failure of Resolve: the registry
// answered 401 or 403, so the gate's credentials (or none) cannot read
// the repository. The fix is read access for the gate.
type AccessDeniedError struct {
	Op         string // "resolve"
	Ref        string
	StatusCode int // 401 or 403
	Err        error
	// Credential names the caller's credentials the registry denied
	// (Credential.Name, ResolveWith); "" for the gate's own.
	Credential string
}

// Error names the credentials tried but not the registry's answer body
// (Err keeps it, for logs that ask for it).
func (e *AccessDeniedError) Error() string {
	if e.Credential != "" {
		return fmt.Sprintf("%s %s: the registry denied read access (HTTP %d) with %s; add an imagePullSecret that can read %s", e.Op, e.Ref, e.StatusCode, e.Credential, repositoryOf(e.Ref))
	}
	return fmt.Sprintf("%s %s: the registry denied signgate read access (HTTP %d); give the gate credentials that can read %s", e.Op, e.Ref, e.StatusCode, repositoryOf(e.Ref))
}

func (e *AccessDeniedError) Unwrap() error { return e.Err }

// Problem says, in the verifier's own words and after the registry's
// name, what went wrong and what to do.
func (e *AccessDeniedError) Problem() string {
	if e.Credential != "" {
		return fmt.Sprintf("denied access (HTTP %d) with %s; add an imagePullSecret that can read it", e.StatusCode, e.Credential)
	}
	return fmt.Sprintf("denied access (HTTP %d); give signgate credentials that can read it", e.StatusCode)
}

// RefusedError is a definite failure: one of the verifier's own rules
// stopped a request to a registry (blocked network, plain HTTP, a body too
// large, a digest mismatch, too many redirects, withheld credentials, a
// token realm on a host not allowed).
type RefusedError struct {
	Op  string // "resolve"
	Ref string
	// Rule names the rule and what to do, in the verifier's own words,
	// e.g. "it is blocked by the network guard (loopback); list it in
	// registry.allowedHosts if it is trusted" ("it" is the registry). The
	// remedy names the gate configuration's keys; callers with other
	// means (command line flags) build their own from Kind and Guard.
	Rule string
	// Kind says which rule refused; "" for the rules without a setting to
	// change (body too large, digest mismatch, too many redirects,
	// withheld credentials).
	Kind Refusal
	// Guard is the network guard's refusal (Kind RefusalNetworkGuard):
	// the host:port refused and the kind of network it is in.
	Guard *BlockedError
	Err   error
}

// Refusal is the kind of a RefusedError whose remedy is a setting.
type Refusal string

const (
	// RefusalNetworkGuard: the address is in a blocked network; the remedy
	// is Options.AllowedHosts (registry.allowedHosts, --allow-host).
	RefusalNetworkGuard Refusal = "network guard"
	// RefusalPlainHTTP: the registry answered in plain HTTP; the remedy is
	// Options.InsecureRegistries (registry.insecureRegistries,
	// --insecure-registry).
	RefusalPlainHTTP Refusal = "plain HTTP"
	// RefusalTokenRealm: the registry named a token service on another
	// host that is not allowed; the remedy is Options.TokenRealms
	// (registry.tokenRealms).
	RefusalTokenRealm Refusal = "token realm"
)

func (e *RefusedError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Ref, e.Err) }

func (e *RefusedError) Unwrap() error { return e.Err }

// Problem returns Rule.
func (e *RefusedError) Problem() string { return e.Rule }

// AnswerError is a definite failure of Resolve that none of the other
// types describes: the registry answered another 4xx status, or an answer
// the verifier could not use (a failed token exchange, a malformed
// manifest or digest).
type AnswerError struct {
	Op         string // "resolve"
	Ref        string
	StatusCode int // the HTTP status, 0 when the answer was not an error status
	Err        error
}

func (e *AnswerError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Ref, e.Err) }

func (e *AnswerError) Unwrap() error { return e.Err }

// Problem says, in the verifier's own words and after the registry's
// name, what went wrong: "answered HTTP 400", or "gave an answer signgate
// could not use".
func (e *AnswerError) Problem() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("answered HTTP %d", e.StatusCode)
	}
	return reasonUnusable
}

// CredentialError is an error of the gate's keychain (Options.Keychain)
// that is not the registry's: credentials from the gate's cloud identity
// that could not be obtained (internal/cloudauth). The operation is
// undecided — retried, never a definite denial — with CredentialProblem as
// its reason: a short phrase of signgate's own that follows the
// registry's name and names the setting, never a token service's text.
type CredentialError interface {
	error
	CredentialProblem() string
}

// classify turns a failed registry operation into one of the typed errors
// above: the one place registry errors are classified.
func classify(op, ref string, err error) error {
	var cred CredentialError
	if errors.As(err, &cred) {
		return &UndecidedError{Op: op, Ref: ref, Reason: cred.CredentialProblem(), Err: err}
	}
	if rule := ruleProblem(err); rule != "" {
		r := &RefusedError{Op: op, Ref: ref, Rule: rule, Err: err}
		switch {
		case errors.As(err, &r.Guard):
			r.Kind = RefusalNetworkGuard
		case errors.Is(err, errPlainHTTP):
			r.Kind = RefusalPlainHTTP
		case errors.Is(err, errRealmRefused):
			r.Kind = RefusalTokenRealm
		}
		return r
	}
	if transient(err) {
		return undecided(op, ref, err)
	}
	switch code := statusCode(err); {
	case code == http.StatusNotFound:
		return &NotFoundError{Op: op, Ref: ref, Err: err}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return &AccessDeniedError{Op: op, Ref: ref, StatusCode: code, Err: err}
	default:
		return &AnswerError{Op: op, Ref: ref, StatusCode: code, Err: err}
	}
}

// undecided wraps err, a transient failure, for op on ref.
func undecided(op, ref string, err error) *UndecidedError {
	return &UndecidedError{Op: op, Ref: ref, Reason: undecidedReason(err), Err: err}
}

// transient reports whether err is registry trouble worth retrying:
// deadlines, refused or reset connections, 5xx and 429, and internal
// errors (errInternal: the work panicked). Failures of our own rules
// (blocked address, oversized body, digest mismatch, withheld
// credentials) and 4xx answers are definite.
func transient(err error) bool {
	switch {
	case err == nil:
		return false
	case ruleProblem(err) != "":
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, errInternal), errors.As(err, new(*certError)):
		return true
	}
	if code := statusCode(err); code != 0 {
		return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// undecidedReason is the Reason of an UndecidedError caused by err.
func undecidedReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	case errors.Is(err, errInternal):
		return reasonInternal
	}
	if ce := (*certError)(nil); errors.As(err, &ce) {
		return ce.problem()
	}
	if code := statusCode(err); code != 0 {
		return fmt.Sprintf("answered HTTP %d", code)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "unreachable (connection refused)"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "unreachable"
	}
	return reasonUnusable
}

// statusCode returns the HTTP status of a registry's error answer in err,
// or 0.
func statusCode(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// accessDenied reports whether err is a registry 401 or 403: the
// credentials the gate has (or none) cannot read the repository.
func accessDenied(err error) bool {
	code := statusCode(err)
	return code == http.StatusUnauthorized || code == http.StatusForbidden
}

// repositoryOf returns the repository of a reference string, without tag
// or digest.
func repositoryOf(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

func asNotVerified(err error, target **NotVerifiedError) bool {
	return errors.As(err, target)
}

// ruleProblem says in a short phrase which of the verifier's own rules
// stopped a request to a registry (blocked address, plain HTTP, body too
// large, digest mismatch, too many redirects, withheld credentials, a
// token realm on a host not allowed), or "" when err is not such a
// refusal. The phrase is the verifier's own text and never contains
// anything a registry or token service answered.
func ruleProblem(err error) string {
	if me := (*mirrorError)(nil); errors.As(err, &me) {
		if rule := ruleProblem(me.err); rule != "" {
			return mirrorRule(me.mirror, rule)
		}
		return ""
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errBlocked):
		var b *BlockedError
		if errors.As(err, &b) {
			return "it " + b.Problem() + "; list it in registry.allowedHosts if it is trusted"
		}
		return "it is blocked by the network guard; list it in registry.allowedHosts if it is trusted"
	case errors.Is(err, errPlainHTTP):
		return "it answered in plain HTTP; list it in registry.insecureRegistries if that is intended"
	case errors.Is(err, errTooLarge):
		return "its answer was larger than the configured limit"
	case errors.Is(err, errDigestMismatch):
		return "the manifest bytes it sent do not match the digest it claimed"
	case errors.Is(err, errTooManyHops):
		return fmt.Sprintf("it redirected more than %d times", maxRedirects)
	case errors.Is(err, errCredsWithheld):
		return "its token service is on another host, which the keychain does not give the registry's credentials to"
	case errors.Is(err, errRealmRefused):
		return "its token service is on another host that is not allowed; add the pair to registry.tokenRealms if it is trusted"
	}
	return ""
}

// certError is a TLS certificate that did not verify: signed by an
// authority not trusted for the host (the system roots, or the host's
// Options.RegistryCAs), for another name, expired. It is undecided, not
// a verdict: the image was never read. The fix is usually the gate's
// configuration (registry.certificateAuthorities) or the registry's
// certificate.
type certError struct {
	host string // the request URL's host[:port], as a reference names it
	err  error
}

func (e *certError) Error() string { return fmt.Sprintf("TLS handshake with %s: %v", e.host, e.err) }

func (e *certError) Unwrap() error { return e.err }

// newCertError returns err as a *certError for a request to u when it is
// a certificate verification failure, else nil.
func newCertError(u *url.URL, err error) *certError {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) || errors.As(err, new(x509.UnknownAuthorityError)) ||
		errors.As(err, new(x509.HostnameError)) || errors.As(err, new(x509.CertificateInvalidError)) {
		return &certError{host: u.Host, err: err}
	}
	return nil
}

// problem is the UndecidedError Reason: the verifier's own words, naming
// the host whose certificate failed (the registry, or its token service
// or a redirect target) and, when a CA bundle is the fix, the setting.
func (e *certError) problem() string {
	var invalid x509.CertificateInvalidError
	msg := "failed TLS verification: the certificate of " + e.host
	switch {
	case errors.As(e.err, new(x509.UnknownAuthorityError)):
		return msg + " is not signed by a CA signgate trusts for it; set registry.certificateAuthorities for " + e.host + " to the CA bundle that issued it"
	case errors.As(e.err, new(x509.HostnameError)):
		return msg + " is not valid for that host name"
	case errors.As(e.err, &invalid) && invalid.Reason == x509.Expired:
		return msg + " has expired or is not yet valid"
	}
	return msg + " could not be verified"
}
