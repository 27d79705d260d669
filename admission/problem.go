package admission

import (
	"context"
	"errors"
	"strings"

	"github.com/signgate/signgate/verifier"
)

// registryProblem says in a short, stable phrase what went wrong talking
// to the registry host, ending in ", retry" when trying again may help.
// A refusal by one of the verifier's rules names the remedy rem gives.
//
// The verifier classifies registry errors (verifier/errors.go); this is a
// switch on its types, which builds the message from their Problem text
// and never quotes err: error text can carry what a registry or token
// service answered (a response body, a challenge parameter), which whoever
// runs that server chooses and which must not reach a user's denial.
// Anything else is "an answer signgate could not use".
func registryProblem(host string, err error, rem Remedies) string {
	reg := "registry " + host
	var (
		undecided   *verifier.UndecidedError
		notFound    *verifier.NotFoundError
		denied      *verifier.AccessDeniedError
		refused     *verifier.RefusedError
		answer      *verifier.AnswerError
		notVerified *verifier.NotVerifiedError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return reg + " timed out, retry"
	case errors.Is(err, context.Canceled):
		return "request cancelled, retry"
	case errors.As(err, &undecided):
		return reg + " " + undecided.Problem() + ", retry"
	case errors.As(err, &notFound):
		return "not found in " + reg
	case errors.As(err, &denied):
		return reg + " " + denied.Problem()
	case errors.As(err, &refused):
		return rem.RefusedProblem(host, refused)
	case errors.As(err, &notVerified) && notVerified.Refused != nil:
		return rem.RefusedProblem(host, notVerified.Refused)
	case errors.As(err, &answer):
		return reg + " " + answer.Problem()
	}
	return reg + " gave an answer signgate could not use"
}

// RefusedProblem says in a short, stable phrase, of the verifier's words
// and never a registry's, which of the verifier's rules refused registry
// host and, for the network guard and plain HTTP, the remedy r names:
//
//	registry 127.0.0.1:5000 is blocked by the network guard (loopback); list it in registry.allowedHosts if it is trusted
//	registry 127.0.0.1:5000 is blocked by the network guard (loopback); pass --allow-host 127.0.0.1:5000
//	refused to use registry r.example: it answered in plain HTTP; pass --insecure-registry r.example if that is intended
//
// When the guard refused another host than the registry (its token
// service, a redirect target) the message names both.
func (r Remedies) RefusedProblem(host string, e *verifier.RefusedError) string {
	reg := "registry " + host
	switch {
	case e.Kind == verifier.RefusalNetworkGuard && e.Guard != nil:
		allow, it := host, "it"
		msg := reg + " " + e.Guard.Problem()
		if !sameHost(host, e.Guard.Host) {
			allow, it = e.Guard.Host, e.Guard.Host
			msg = reg + " sent signgate to " + e.Guard.Host + ", which " + e.Guard.Problem()
		}
		if r == FlagRemedies {
			return msg + "; pass --allow-host " + allow
		}
		return msg + "; list " + it + " in registry.allowedHosts if it is trusted"
	case e.Kind == verifier.RefusalPlainHTTP && r == FlagRemedies:
		return "refused to use " + reg + ": it answered in plain HTTP; pass --insecure-registry " + host + " if that is intended"
	}
	return "refused to use " + reg + ": " + e.Problem()
}

// sameHost reports whether the host:port the guard refused is the
// registry host (which may omit the port).
func sameHost(registry, hostport string) bool {
	if strings.EqualFold(registry, hostport) {
		return true
	}
	i := strings.LastIndex(hostport, ":")
	return i > strings.LastIndex(hostport, "]") && strings.EqualFold(registry, hostport[:i])
}

// isTransient reports whether err means "not known yet": registry trouble
// or the review's deadline.
func isTransient(err error) bool {
	return verifier.IsUndecided(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// withRetry ends msg with ", retry" unless it already says so.
func withRetry(msg string) string {
	if strings.HasSuffix(msg, "retry") {
		return msg
	}
	return msg + ", retry"
}

// maxDetail bounds the error text quoted in a message by oneLine.
const maxDetail = 200

// oneLine makes s safe to put in a one-line message. Only for text that
// is not a registry's: policy and namespace errors.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	return s
}
