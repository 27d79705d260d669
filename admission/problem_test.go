package admission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// hostile is the text a hostile registry or token service puts in its
// answers; no admission message may repeat it.
const hostile = "ATTACKER-CONTROLLED-TEXT"

// TestRegistryTextNeverEchoed: whatever a registry or its token service
// answers, a denial or warning names the registry and classifies the
// failure; it never repeats the response text.
func TestRegistryTextNeverEchoed(t *testing.T) {
	// challenge makes every registry request demand a token from /token on
	// the registry itself, which token answers.
	challenge := func(host string, token func(w http.ResponseWriter)) registrytest.Fault {
		return func(w http.ResponseWriter, req *http.Request) bool {
			if req.URL.Path == "/token" {
				token(w)
				return true
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+host+`/token",service="`+host+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"`+hostile+`"}]}`)
			return true
		}
	}
	tests := []struct {
		name  string
		fault func(host string) registrytest.Fault
	}{
		{"token service answers 200 without a token", func(host string) registrytest.Fault {
			return challenge(host, func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"detail":"`+hostile+`"}`)
			})
		}},
		{"token service answers 401 with a body", func(host string) registrytest.Fault {
			return challenge(host, func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"`+hostile+`"}]}`)
			})
		}},
		{"token service answers garbage", func(host string) registrytest.Fault {
			return challenge(host, func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, hostile)
			})
		}},
		{"registry answers 400 with a body", func(string) registrytest.Fault {
			return func(w http.ResponseWriter, req *http.Request) bool {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"`+hostile+`"}]}`)
				return true
			}
		}},
		{"registry answers 500 with a body", func(string) registrytest.Fault {
			return func(w http.ResponseWriter, req *http.Request) bool {
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, hostile)
				return true
			}
		}},
	}
	reviews := []struct {
		name    string
		webhook Webhook
	}{
		{"mutate-pod-tags", WebhookMutate},
		{"validate-deployment-signed-tag", WebhookValidate},
	}
	for _, tc := range tests {
		for _, rv := range reviews {
			t.Run(tc.name+"/"+rv.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, configDefault)
				e.reg.SetFault(tc.fault(e.reg.Host))
				resp := e.post(t, rv.webhook, e.review(t, rv.name), "?timeout=10s")
				var text []string
				if resp.Result != nil {
					text = append(text, resp.Result.Message)
				}
				text = append(text, resp.Warnings...)
				all := strings.Join(text, "\n")
				if all == "" {
					t.Fatalf("no message and no warning; want the failure explained: %+v", resp)
				}
				if strings.Contains(all, hostile) {
					t.Errorf("the answer repeats the registry's response text:\n%s", all)
				}
				if !strings.Contains(all, "registry "+e.reg.Host) {
					t.Errorf("the answer does not name the registry %s:\n%s", e.reg.Host, all)
				}
				t.Log(e.normalize(all))
			})
		}
	}
}

// TestRegistryProblem pins the message for each of the verifier's error
// types: built from the verifier's Problem text, never from the error's.
func TestRegistryProblem(t *testing.T) {
	t.Parallel()
	cause := errors.New(hostile)
	tests := []struct {
		err  error
		want string
	}{
		{&verifier.UndecidedError{Reason: "answered HTTP 503", Err: cause}, "registry r.example answered HTTP 503, retry"},
		{&verifier.UndecidedError{Reason: "unreachable (connection refused)", Err: cause}, "registry r.example unreachable (connection refused), retry"},
		{&verifier.UndecidedError{Err: cause}, "registry r.example gave an answer signgate could not use, retry"},
		{&verifier.UndecidedError{Reason: "timed out", Err: fmt.Errorf("%s: %w", hostile, context.DeadlineExceeded)}, "registry r.example timed out, retry"},
		{&verifier.UndecidedError{Err: context.Canceled}, "request cancelled, retry"},
		{fmt.Errorf("%s: %w", hostile, context.DeadlineExceeded), "registry r.example timed out, retry"},
		{&verifier.NotFoundError{Err: cause}, "not found in registry r.example"},
		{&verifier.AccessDeniedError{StatusCode: 403, Err: cause}, "registry r.example denied access (HTTP 403); give signgate credentials that can read it"},
		{&verifier.RefusedError{Rule: "it redirected more than 10 times", Err: cause}, "refused to use registry r.example: it redirected more than 10 times"},
		{&verifier.AnswerError{StatusCode: 400, Err: cause}, "registry r.example answered HTTP 400"},
		{&verifier.AnswerError{Err: cause}, "registry r.example gave an answer signgate could not use"},
		{fmt.Errorf("wrapped: %w", &verifier.NotFoundError{Err: cause}), "not found in registry r.example"},
		{cause, "registry r.example gave an answer signgate could not use"},
	}
	for _, tc := range tests {
		if got := registryProblem("r.example", tc.err); got != tc.want {
			t.Errorf("registryProblem(%T) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
