package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	// could not be read with the gate's credentials. The fix is read
	// access for the gate, not a signature.
	AccessDenied bool
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
	Err error
}

func (e *UndecidedError) Error() string {
	if errors.Is(e.Err, errInternal) {
		return fmt.Sprintf("%s %s: undecided: %v", e.Op, e.Ref, e.Err)
	}
	return fmt.Sprintf("%s %s: undecided, registry trouble (retry later): %v", e.Op, e.Ref, e.Err)
}

func (e *UndecidedError) Unwrap() error { return e.Err }

// IsUndecided reports whether err (or anything it wraps) is an
// *UndecidedError.
func IsUndecided(err error) bool {
	var u *UndecidedError
	return errors.As(err, &u)
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
	case errors.Is(err, errBlocked), errors.Is(err, errTooLarge),
		errors.Is(err, errDigestMismatch), errors.Is(err, errTooManyHops),
		errors.Is(err, errPlainHTTP), errors.Is(err, errCredsWithheld),
		errors.Is(err, errRealmRefused):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, errInternal):
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests ||
			te.StatusCode == http.StatusRequestTimeout
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// accessDenied reports whether err is a registry 401 or 403: the
// credentials the gate has (or none) cannot read the repository.
func accessDenied(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden)
}

// notFound reports whether err is a registry 404.
func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func asNotVerified(err error, target **NotVerifiedError) bool {
	return errors.As(err, target)
}

// RuleProblem says in a short phrase which of the verifier's own rules
// stopped a request to a registry (blocked address, plain HTTP, body too
// large, digest mismatch, too many redirects, withheld credentials, a
// token realm on a host not allowed), or "" when err is not such a
// refusal. The phrase is the verifier's own text and never contains
// anything a registry or token service answered, so callers may show it
// to users where they must not show err itself.
func RuleProblem(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errBlocked):
		return "its address is in a blocked network; list it in registry.allowedHosts if it is trusted"
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
