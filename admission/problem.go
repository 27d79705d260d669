package admission

import (
	"context"
	"errors"
	"strings"

	"github.com/signgate/signgate/verifier"
)

// registryProblem says in a short, stable phrase what went wrong talking
// to the registry host, ending in ", retry" when trying again may help.
//
// The verifier classifies registry errors (verifier/errors.go); this is a
// switch on its types, which builds the message from their Problem text
// and never quotes err: error text can carry what a registry or token
// service answered (a response body, a challenge parameter), which whoever
// runs that server chooses and which must not reach a user's denial.
// Anything else is "an answer signgate could not use".
func registryProblem(host string, err error) string {
	reg := "registry " + host
	var (
		undecided *verifier.UndecidedError
		notFound  *verifier.NotFoundError
		denied    *verifier.AccessDeniedError
		refused   *verifier.RefusedError
		answer    *verifier.AnswerError
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
		return "refused to use " + reg + ": " + refused.Problem()
	case errors.As(err, &answer):
		return reg + " " + answer.Problem()
	}
	return reg + " gave an answer signgate could not use"
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
