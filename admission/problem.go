package admission

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signgate/signgate/verifier"
)

// registryProblem says in a short, stable phrase what went wrong talking
// to the registry host, ending in ", retry" when trying again may help.
//
// It classifies err (deadline, network, HTTP status, one of the
// verifier's own rules) and never quotes it: error text can carry what a
// registry or token service answered (a response body, a challenge
// parameter), which whoever runs that server chooses and which must not
// reach a user's denial. Anything unclassified is "an answer signgate
// could not use".
func registryProblem(host string, err error) string {
	retry := ""
	if isTransient(err) {
		retry = ", retry"
	}
	reg := "registry " + host
	var te *transport.Error
	var own Problem
	switch {
	case errors.As(err, &own):
		return own.Problem() + retry
	case errors.Is(err, context.DeadlineExceeded):
		return reg + " timed out, retry"
	case errors.Is(err, context.Canceled):
		return "request cancelled, retry"
	case verifier.RuleProblem(err) != "":
		return "refused to use " + reg + ": " + verifier.RuleProblem(err) + retry
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return "not found in " + reg
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return fmt.Sprintf("%s denied access (HTTP %d); give signgate credentials that can read it", reg, te.StatusCode)
	case errors.As(err, &te):
		return fmt.Sprintf("%s answered HTTP %d%s", reg, te.StatusCode, retry)
	case errors.Is(err, syscall.ECONNREFUSED):
		return reg + " unreachable (connection refused)" + retry
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return reg + " unreachable" + retry
	}
	return reg + " gave an answer signgate could not use" + retry
}

// Problem is implemented by errors of a Verifier whose text is the
// verifier's own, never a registry's, and may be shown to users as it is
// (the offline verifier of signgate check).
type Problem interface {
	error
	Problem() string
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
