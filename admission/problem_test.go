package admission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
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
		if got := registryProblem("r.example", tc.err, ConfigRemedies); got != tc.want {
			t.Errorf("registryProblem(%T) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestRefusedProblemRemedies pins the messages for the refusals whose
// remedy is a setting, under both remedies.
func TestRefusedProblemRemedies(t *testing.T) {
	t.Parallel()
	cause := errors.New(hostile)
	guard := func(host string, prefix string, class string) *verifier.RefusedError {
		return &verifier.RefusedError{Kind: verifier.RefusalNetworkGuard, Rule: "it is blocked by the network guard", Err: cause,
			Guard: &verifier.BlockedError{Host: host, Prefix: netip.MustParsePrefix(prefix), Class: class}}
	}
	loopback := guard("127.0.0.1:5000", "127.0.0.0/8", verifier.NetworkLoopback)
	plain := &verifier.RefusedError{Kind: verifier.RefusalPlainHTTP, Rule: "it answered in plain HTTP; list it in registry.insecureRegistries if that is intended", Err: cause}
	realm := &verifier.RefusedError{Kind: verifier.RefusalTokenRealm, Rule: "its token service is on another host that is not allowed; add the pair to registry.tokenRealms if it is trusted", Err: cause}
	tests := []struct {
		host   string
		err    error
		config string // ConfigRemedies
		flags  string // FlagRemedies
	}{
		{"127.0.0.1:5000", loopback,
			"registry 127.0.0.1:5000 is blocked by the network guard (loopback); list it in registry.allowedHosts if it is trusted",
			"registry 127.0.0.1:5000 is blocked by the network guard (loopback); pass --allow-host 127.0.0.1:5000"},
		{"localhost", guard("localhost:443", "::1/128", verifier.NetworkLoopback),
			"registry localhost is blocked by the network guard (loopback); list it in registry.allowedHosts if it is trusted",
			"registry localhost is blocked by the network guard (loopback); pass --allow-host localhost"},
		{"meta.example", guard("meta.example:443", "169.254.0.0/16", verifier.NetworkMetadata),
			"registry meta.example is blocked by the network guard (cloud metadata address 169.254.169.254); list it in registry.allowedHosts if it is trusted",
			"registry meta.example is blocked by the network guard (cloud metadata address 169.254.169.254); pass --allow-host meta.example"},
		{"r.example", guard("r.example:443", "10.0.0.0/8", verifier.NetworkConfigured),
			"registry r.example is blocked by the network guard (a blocked network 10.0.0.0/8); list it in registry.allowedHosts if it is trusted",
			"registry r.example is blocked by the network guard (a blocked network 10.0.0.0/8); pass --allow-host r.example"},
		{"r.example", guard("auth.internal:8080", "169.254.0.0/16", verifier.NetworkLinkLocal),
			"registry r.example sent signgate to auth.internal:8080, which is blocked by the network guard (link-local); list auth.internal:8080 in registry.allowedHosts if it is trusted",
			"registry r.example sent signgate to auth.internal:8080, which is blocked by the network guard (link-local); pass --allow-host auth.internal:8080"},
		{"127.0.0.1:5000", &verifier.NotVerifiedError{Reason: "signatures could not be read", Refused: loopback},
			"registry 127.0.0.1:5000 is blocked by the network guard (loopback); list it in registry.allowedHosts if it is trusted",
			"registry 127.0.0.1:5000 is blocked by the network guard (loopback); pass --allow-host 127.0.0.1:5000"},
		{"r.example", plain,
			"refused to use registry r.example: it answered in plain HTTP; list it in registry.insecureRegistries if that is intended",
			"refused to use registry r.example: it answered in plain HTTP; pass --insecure-registry r.example if that is intended"},
		{"r.example", realm,
			"refused to use registry r.example: its token service is on another host that is not allowed; add the pair to registry.tokenRealms if it is trusted",
			"refused to use registry r.example: its token service is on another host that is not allowed; add the pair to registry.tokenRealms if it is trusted"},
	}
	for _, tc := range tests {
		if got := registryProblem(tc.host, tc.err, ConfigRemedies); got != tc.config {
			t.Errorf("ConfigRemedies: registryProblem(%s, %T) =\n %q\nwant\n %q", tc.host, tc.err, got, tc.config)
		}
		if got := registryProblem(tc.host, tc.err, FlagRemedies); got != tc.flags {
			t.Errorf("FlagRemedies: registryProblem(%s, %T) =\n %q\nwant\n %q", tc.host, tc.err, got, tc.flags)
		}
	}
}

// TestGuardRefusalDenial: against a registry the network guard refuses
// (registrytest's, on loopback, not in AllowedHosts), the gate's messages
// name the guard, the network and the remedy of its Remedies, for a tag
// (mutate's warning, validate's denial of the unpinned image) and a
// digest (validate: the signatures could not be read). The default is the
// serve remedy, registry.allowedHosts.
func TestGuardRefusalDenial(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		remedies Remedies
		want     string
	}{
		{"serve default", ConfigRemedies, "is blocked by the network guard (loopback); list it in registry.allowedHosts if it is trusted"},
		{"flags", FlagRemedies, "is blocked by the network guard (loopback); pass --allow-host "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, configDefault)
			v, err := verifier.New(verifier.Options{Timeout: hangGuard, InsecureRegistries: []string{e.reg.Host}})
			if err != nil {
				t.Fatal(err)
			}
			if e.gate, err = NewGate(Options{Verifier: v, Policies: e.gate.policies, Config: e.gate.config, Namespace: "signgate-system", Remedies: tc.remedies}); err != nil {
				t.Fatal(err)
			}
			want := "registry " + e.reg.Host + " " + tc.want
			if tc.remedies == FlagRemedies {
				want += e.reg.Host
			}
			for _, rv := range []struct {
				review  string
				webhook Webhook
				allowed bool
			}{
				{"mutate-pod-tags", WebhookMutate, true},
				{"validate-pod-unpinned", WebhookValidate, false},
				{"validate-pod-signed", WebhookValidate, false},
			} {
				resp := e.post(t, rv.webhook, e.review(t, rv.review), "?timeout=10s")
				text := strings.Join(resp.Warnings, "\n")
				if resp.Result != nil {
					text += "\n" + resp.Result.Message
				}
				if resp.Allowed != rv.allowed || !strings.Contains(text, want) {
					t.Errorf("%s: allowed %v, want %v; the answer should contain %q:\n%s", rv.review, resp.Allowed, rv.allowed, want, text)
				}
				if strings.Contains(text, "sign it") {
					t.Errorf("%s: the answer asks for a signature, but the registry was never read:\n%s", rv.review, text)
				}
			}
		})
	}
}

// TestOversizedSignatureDataDenial: a registry that answers with a
// referrers index far larger than signature data ever is gets a denial
// that names the oversized response and its limit, never an allow, never
// "sign it".
func TestOversizedSignatureDataDenial(t *testing.T) {
	t.Parallel()
	e := newEnv(t, configDefault)
	entry := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":1},`
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		strings.Repeat(entry, (600<<10)/len(entry)) + `{}]}`
	e.reg.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		switch {
		case strings.Contains(req.URL.Path, "/referrers/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
			io.WriteString(w, index)
			return true
		case strings.Contains(req.URL.Path, "/manifests/sha256-"):
			w.WriteHeader(http.StatusNotFound) // no classic signature: the referrers are read
			return true
		}
		return false
	})
	resp := e.post(t, WebhookValidate, e.review(t, "validate-pod-signed"), "?timeout=10s")
	if resp.Allowed || resp.Result == nil {
		t.Fatalf("allowed %v with an oversized referrers index; want a denial", resp.Allowed)
	}
	msg := resp.Result.Message
	if !strings.Contains(msg, "referrers index for sha256:") || !strings.Contains(msg, "is larger than the 512 KiB limit") {
		t.Errorf("the denial does not name the oversized referrers index and its limit:\n%s", msg)
	}
	if strings.Contains(msg, "sign it") {
		t.Errorf("the denial asks for a signature, not for a sane registry answer:\n%s", msg)
	}
}
