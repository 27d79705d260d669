package verifier_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// hostile is what a hostile registry or token service writes in its
// answers (bodies, headers, challenge parameters); no Problem may repeat it.
const hostile = "ATTACKER-CONTROLLED-TEXT"

// hostileStatus answers every request with code, hostile text in the
// body and in headers (a Basic challenge on 401, so that no token flow
// starts).
func hostileStatus(code int) func(*registrytest.Registry) registrytest.Fault {
	return func(*registrytest.Registry) registrytest.Fault {
		return func(w http.ResponseWriter, _ *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Registry-Says", hostile)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="`+hostile+`"`)
			}
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "3600")
			}
			w.WriteHeader(code)
			io.WriteString(w, `{"errors":[{"code":"DENIED","message":"`+hostile+`","detail":"`+hostile+`"}]}`)
			return true
		}
	}
}

// hostileToken demands a token from /token on the registry itself, which
// answer writes.
func hostileToken(answer func(w http.ResponseWriter)) func(*registrytest.Registry) registrytest.Fault {
	return func(reg *registrytest.Registry) registrytest.Fault {
		return func(w http.ResponseWriter, req *http.Request) bool {
			if req.URL.Path == "/token" {
				answer(w)
				return true
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+reg.Host+`/token",service="`+hostile+`",scope="`+hostile+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, hostile)
			return true
		}
	}
}

// errorKind names the verifier type of err and returns its Problem ("" and
// "untyped" for an error of none of the verifier's types).
func errorKind(err error) (kind, problem string) {
	var (
		u   *verifier.UndecidedError
		nf  *verifier.NotFoundError
		ad  *verifier.AccessDeniedError
		ref *verifier.RefusedError
		ans *verifier.AnswerError
		nv  *verifier.NotVerifiedError
	)
	switch {
	case err == nil:
		return "nil", ""
	case errors.As(err, &u):
		return "undecided", u.Problem()
	case errors.As(err, &nf):
		return "not found", nf.Problem()
	case errors.As(err, &ad):
		return "access denied", ad.Problem()
	case errors.As(err, &ref):
		return "refused", ref.Problem()
	case errors.As(err, &ans):
		return "answer", ans.Problem()
	case errors.As(err, &nv):
		return "not verified", nv.Reason
	}
	return "untyped", ""
}

// errorCase is one registry fault and what Resolve or Verify answers.
type errorCase struct {
	name  string
	fault func(reg *registrytest.Registry) registrytest.Fault
	// opts returns the verifier's options (nil: newVerifier's, which
	// allow the registry over plain HTTP) and the host to ask (""
	// the registry's).
	opts        func(t *testing.T, reg *registrytest.Registry) (verifier.Options, string)
	wantKind    string
	wantProblem string // exact; for "not verified" the Reason
}

// refusedHost asks a host that refuses connections.
func refusedHost(t *testing.T, _ *registrytest.Registry) (verifier.Options, string) {
	host := registrytest.RefusedHost(t)
	return verifier.Options{AllowedHosts: []string{host}, InsecureRegistries: []string{host}, Timeout: hangGuard}, host
}

// blockedHost asks the registry on 127.0.0.1 without allowing loopback.
func blockedHost(_ *testing.T, reg *registrytest.Registry) (verifier.Options, string) {
	return verifier.Options{InsecureRegistries: []string{reg.Host}, Timeout: hangGuard}, reg.Host
}

// plainHTTP asks the registry, allowed, without allowing plain HTTP.
func plainHTTP(_ *testing.T, reg *registrytest.Registry) (verifier.Options, string) {
	return verifier.Options{AllowedHosts: []string{reg.Host}, Timeout: hangGuard}, reg.Host
}

// stalled gives the verifier a short Timeout against a registry that
// never answers (registrytest.Stall): only the deadline ends the call.
func stalled(_ *testing.T, reg *registrytest.Registry) (verifier.Options, string) {
	return verifier.Options{AllowedHosts: []string{reg.Host}, InsecureRegistries: []string{reg.Host}, Timeout: 200 * time.Millisecond}, reg.Host
}

func stall(*registrytest.Registry) registrytest.Fault { return registrytest.Stall() }

// runErrorCase sets tc up on a registry holding team/app:v1 (signed by
// alice) and returns what call answers, with the digest's canonical
// reference on the host asked.
func runErrorCase(t *testing.T, tc errorCase, call func(v *verifier.Verifier, host string, d name.Digest, set verifier.AuthoritySet) error) {
	t.Helper()
	reg, alice, d := signedApp(t)
	set := newSet(t, 0, authority("alice", alice))
	var v *verifier.Verifier
	host := reg.Host
	if tc.opts == nil {
		v = newVerifier(t, reg, verifier.Options{})
	} else {
		var opts verifier.Options
		opts, host = tc.opts(t, reg)
		var err error
		if v, err = verifier.New(opts); err != nil {
			t.Fatal(err)
		}
	}
	if tc.fault != nil {
		reg.SetFault(tc.fault(reg))
	}
	err := call(v, host, d, set)
	kind, problem := errorKind(err)
	if kind != tc.wantKind || problem != tc.wantProblem {
		t.Errorf("err = %v (%T):\n got %s: %q\nwant %s: %q", err, err, kind, problem, tc.wantKind, tc.wantProblem)
	}
	if strings.Contains(problem, hostile) {
		t.Errorf("Problem %q repeats the registry's text", problem)
	}
	if kind != "not verified" && kind != "nil" && errors.Unwrap(err) == nil {
		t.Errorf("err = %v (%T) does not wrap its cause", err, err)
	}
	t.Logf("%s: %v", kind, err)
}

// TestResolveErrorTypes: every failure of Resolve is one of the verifier's
// types, with a Problem of the verifier's own words that never repeats
// what the registry or its token service sent.
func TestResolveErrorTypes(t *testing.T) {
	t.Parallel()
	const unusable = "gave an answer signgate could not use"
	tests := []errorCase{
		{name: "404: tag not found", fault: hostileStatus(http.StatusNotFound), wantKind: "not found", wantProblem: "not found"},
		{name: "401", fault: hostileStatus(http.StatusUnauthorized), wantKind: "access denied", wantProblem: "denied access (HTTP 401); give signgate credentials that can read it"},
		{name: "403", fault: hostileStatus(http.StatusForbidden), wantKind: "access denied", wantProblem: "denied access (HTTP 403); give signgate credentials that can read it"},
		{name: "400", fault: hostileStatus(http.StatusBadRequest), wantKind: "answer", wantProblem: "answered HTTP 400"},
		{name: "500", fault: hostileStatus(http.StatusInternalServerError), wantKind: "undecided", wantProblem: "answered HTTP 500"},
		{name: "503", fault: hostileStatus(http.StatusServiceUnavailable), wantKind: "undecided", wantProblem: "answered HTTP 503"},
		{name: "429", fault: hostileStatus(http.StatusTooManyRequests), wantKind: "undecided", wantProblem: "answered HTTP 429"},
		{name: "connection refused", opts: refusedHost, wantKind: "undecided", wantProblem: "unreachable (connection refused)"},
		{name: "timeout", fault: stall, opts: stalled, wantKind: "undecided", wantProblem: "timed out"},
		{
			name: "blocked network", opts: blockedHost, wantKind: "refused",
			wantProblem: "it is blocked by the network guard (loopback); list it in registry.allowedHosts if it is trusted",
		},
		{
			name: "plain HTTP refused", opts: plainHTTP, wantKind: "refused",
			wantProblem: "it answered in plain HTTP; list it in registry.insecureRegistries if that is intended",
		},
		{
			name: "token service answers 200 without a token",
			fault: hostileToken(func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"detail":"`+hostile+`"}`)
			}),
			wantKind: "answer", wantProblem: unusable,
		},
		{
			name: "token service answers garbage",
			fault: hostileToken(func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, hostile)
			}),
			wantKind: "answer", wantProblem: unusable,
		},
		{
			name: "token service answers 401",
			fault: hostileToken(func(w http.ResponseWriter) {
				w.Header().Set("X-Token-Says", hostile)
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"`+hostile+`"}]}`)
			}),
			wantKind: "access denied", wantProblem: "denied access (HTTP 401); give signgate credentials that can read it",
		},
		{
			name: "token service answers 503",
			fault: hostileToken(func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, hostile)
			}),
			wantKind: "undecided", wantProblem: "answered HTTP 503",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runErrorCase(t, tc, func(v *verifier.Verifier, host string, _ name.Digest, _ verifier.AuthoritySet) error {
				ref, err := verifier.ParseReference(host + "/team/app:v1")
				if err != nil {
					t.Fatal(err)
				}
				_, err = v.Resolve(t.Context(), ref)
				var u *verifier.UndecidedError
				if errors.As(err, &u) && (u.Op != "resolve" || u.Ref != ref.String()) {
					t.Errorf("Op %q, Ref %q; want resolve, %s", u.Op, u.Ref, ref)
				}
				return err
			})
		})
	}
}

// TestVerifyErrorTypes: Verify answers *NotVerifiedError or
// *UndecidedError; an undecided answer has a Reason of the verifier's own
// words that never repeats what the registry sent.
func TestVerifyErrorTypes(t *testing.T) {
	t.Parallel()
	const unread = "signatures could not be read"
	tests := []errorCase{
		{name: "401", fault: hostileStatus(http.StatusUnauthorized), wantKind: "not verified", wantProblem: "the registry denied signgate read access to the signatures"},
		{name: "403", fault: hostileStatus(http.StatusForbidden), wantKind: "not verified", wantProblem: "the registry denied signgate read access to the signatures"},
		{name: "400", fault: hostileStatus(http.StatusBadRequest), wantKind: "not verified", wantProblem: unread},
		{name: "500", fault: hostileStatus(http.StatusInternalServerError), wantKind: "undecided", wantProblem: "answered HTTP 500"},
		{name: "503", fault: hostileStatus(http.StatusServiceUnavailable), wantKind: "undecided", wantProblem: "answered HTTP 503"},
		{name: "429", fault: hostileStatus(http.StatusTooManyRequests), wantKind: "undecided", wantProblem: "answered HTTP 429"},
		{name: "connection refused", opts: refusedHost, wantKind: "undecided", wantProblem: "unreachable (connection refused)"},
		{name: "timeout", fault: stall, opts: stalled, wantKind: "undecided", wantProblem: "timed out"},
		{name: "blocked network", opts: blockedHost, wantKind: "not verified", wantProblem: unread},
		{name: "plain HTTP refused", opts: plainHTTP, wantKind: "not verified", wantProblem: unread},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runErrorCase(t, tc, func(v *verifier.Verifier, host string, d name.Digest, set verifier.AuthoritySet) error {
				d, err := name.NewDigest(host+"/team/app@"+d.DigestStr(), name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				_, err = v.Verify(t.Context(), d, set)
				var u *verifier.UndecidedError
				if errors.As(err, &u) && (u.Op != "verify" || u.Ref != d.String()) {
					t.Errorf("Op %q, Ref %q; want verify, %s", u.Op, u.Ref, d)
				}
				return err
			})
		})
	}
}
