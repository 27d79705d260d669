package admission

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signgate/signgate/verifier"
)

// maxDetail bounds the error text quoted in a message: registry errors can
// be long and are chosen by whoever runs the registry.
const maxDetail = 200

// registryProblem says in a short, stable phrase what went wrong talking to
// a registry, ending in ", retry" when trying again may help. The full
// error is in the admission log line's reason.
func registryProblem(err error) string {
	retry := ""
	if isTransient(err) {
		retry = ", retry"
	}
	var te *transport.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out, retry"
	case errors.Is(err, context.Canceled):
		return "request cancelled, retry"
	case errors.As(err, &te) && te.StatusCode == 404:
		return "not found in the registry"
	case errors.As(err, &te):
		return fmt.Sprintf("registry answered HTTP %d%s", te.StatusCode, retry)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "registry unreachable (connection refused)" + retry
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "registry unreachable" + retry
	}
	var u *verifier.UndecidedError
	if errors.As(err, &u) {
		err = u.Err
	}
	return oneLine(err.Error()) + retry
}

// oneLine makes s safe to put in a one-line message.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	return s
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
