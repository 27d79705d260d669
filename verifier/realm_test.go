package verifier_test

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// Secrets the keychain hands out in TestTokenRealmCredentials.
const (
	realmUser     = "gate"
	realmPassword = "s3cret-password"
	realmIdentity = "s3cret-identity-token"
	realmToken    = "registry-token-for-gate"
	anonToken     = "anonymous-pull-token"
)

// realmKeychain gives cfg to the listed hosts and nothing to any other.
type realmKeychain struct {
	hosts []string
	cfg   authn.AuthConfig
}

func (k realmKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if slices.Contains(k.hosts, r.RegistryStr()) {
		return authn.FromConfig(k.cfg), nil
	}
	return authn.Anonymous, nil
}

// tokenService is a token endpoint that records every request it gets
// and issues realmToken only for the keychain's credentials, as Basic
// auth (docker token flow) or as a refresh_token (OAuth2 flow). With
// anonymous set it issues anonToken to anyone else.
type tokenService struct {
	anonymous bool

	mu   sync.Mutex
	seen []string // one dump per request: method, URL, headers, body
	good int      // requests that carried the credentials
}

func (s *tokenService) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var dump strings.Builder
	dump.WriteString(req.Method + " " + req.URL.String() + "\n")
	req.Header.Write(&dump)
	dump.Write(body)
	form, _ := url.ParseQuery(string(body))
	user, pass, _ := req.BasicAuth()
	ok := user == realmUser && pass == realmPassword || form.Get("refresh_token") == realmIdentity
	s.mu.Lock()
	s.seen = append(s.seen, dump.String())
	if ok {
		s.good++
	}
	s.mu.Unlock()
	tok := realmToken
	if !ok && s.anonymous {
		ok, tok = true, anonToken
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"token":"`+tok+`","access_token":"`+tok+`"}`)
}

// leaks returns the requests that carried an Authorization header or any
// of the keychain's secrets anywhere (URL, headers, body).
func (s *tokenService) leaks() []string {
	secrets := []string{
		realmPassword, realmIdentity,
		base64.StdEncoding.EncodeToString([]byte(realmUser + ":" + realmPassword)),
		url.QueryEscape(realmPassword), url.QueryEscape(realmIdentity),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad []string
	for _, d := range s.seen {
		if strings.Contains(strings.ToLower(d), "\nauthorization:") || slices.ContainsFunc(secrets, func(sec string) bool { return strings.Contains(d, sec) }) {
			bad = append(bad, d)
		}
	}
	return bad
}

func (s *tokenService) counts() (requests, good int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen), s.good
}

// bearerGate makes reg demand a token (realmToken, or anonToken as for a
// public repository), naming realm in its challenge; requests for path
// /token on reg itself go to own.
func bearerGate(reg *registrytest.Registry, realm string, own *tokenService) registrytest.Fault {
	return func(w http.ResponseWriter, req *http.Request) bool {
		if req.URL.Path == "/token" {
			own.ServeHTTP(w, req)
			return true
		}
		if a := req.Header.Get("Authorization"); a == "Bearer "+realmToken || a == "Bearer "+anonToken {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="`+reg.Host+`"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	}
}

// TestTokenRealmCredentials: a registry's credentials go to the token
// realm its 401 names only when the keychain gives the same credentials
// to the realm's host (in practice: a realm on the registry's own host).
// A realm on another host never sees them, even when that host is
// reachable and allowed as plain HTTP, and verification then fails
// closed with a message that says why.
func TestTokenRealmCredentials(t *testing.T) {
	t.Parallel()
	basic := authn.AuthConfig{Username: realmUser, Password: realmPassword}
	identity := authn.AuthConfig{Username: "<token>", IdentityToken: realmIdentity}
	tests := []struct {
		name      string
		cfg       authn.AuthConfig
		sameHost  bool // realm on the registry's own host:port
		realmKeys bool // the keychain also gives cfg to the realm host
		public    bool // the realm issues anonymous tokens, which suffice
		verified  bool
	}{
		{name: "same host, basic credentials", cfg: basic, sameHost: true, verified: true},
		{name: "same host, identity token", cfg: identity, sameHost: true, verified: true},
		{name: "another host, basic credentials", cfg: basic},
		{name: "another host, identity token", cfg: identity},
		{name: "another host, anonymous token suffices", cfg: basic, public: true, verified: true},
		{name: "another host the keychain also holds the credentials for", cfg: basic, realmKeys: true, verified: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, alice, d := signedApp(t)
			set := newSet(t, 0, authority("alice", alice))

			own, other := &tokenService{}, &tokenService{anonymous: tc.public}
			srv := httptest.NewServer(other)
			t.Cleanup(srv.Close)
			// localhost:PORT is another host:port than 127.0.0.1:PORT, and
			// not an IP literal, which go-containerregistry would refuse
			// as a realm on its own (private address).
			otherHost := strings.Replace(strings.TrimPrefix(srv.URL, "http://"), "127.0.0.1", "localhost", 1)
			realm, tokens := "http://"+otherHost+"/token", other
			if tc.sameHost {
				realm, tokens = "http://"+reg.Host+"/token", own
			}
			reg.SetFault(bearerGate(reg, realm, own))
			kc := realmKeychain{hosts: []string{reg.Host}, cfg: tc.cfg}
			if tc.realmKeys {
				kc.hosts = append(kc.hosts, otherHost)
			}
			// The realm host is reachable and may be plain HTTP, so that
			// only the credential rule stands between it and the secrets.
			// The pair is allowed (TestTokenRealmHosts covers the realm host rule).
			v := newVerifier(t, reg, verifier.Options{
				Keychain:           kc,
				AllowedHosts:       []string{otherHost},
				InsecureRegistries: []string{otherHost},
				TokenRealms:        []verifier.TokenRealm{{Registry: reg.Host, Realm: otherHost}},
			})

			res, err := v.Verify(t.Context(), d, set)
			got := outcome(res, err)
			requests, good := tokens.counts()
			t.Logf("%s; realm %s saw %d requests, %d with the credentials", got, realm, requests, good)
			if leaks := other.leaks(); len(leaks) != 0 && !tc.realmKeys {
				t.Errorf("the realm on another host received credentials in %d of %d requests:\n%s", len(leaks), requests, strings.Join(leaks, "\n---\n"))
			}
			if tc.verified {
				if got != "verified" || (good == 0) != tc.public {
					t.Fatalf("outcome %s with %d credentialed token requests, want verified (with the credentials: %v); err %v", got, good, !tc.public, err)
				}
				return
			}
			var nv *verifier.NotVerifiedError
			if !errors.As(err, &nv) {
				t.Fatalf("err = %v (%T), want a definite *NotVerifiedError", err, err)
			}
			// The message also shows the token flow was reached: the
			// answer is not a failure of something before it.
			if !strings.Contains(nv.Error(), "credentials withheld") || !strings.Contains(nv.Error(), otherHost) {
				t.Errorf("err = %v, want it to say the credentials were withheld from %s", nv, otherHost)
			}
			t.Log(nv)
		})
	}
}

// TestTokenRealmHosts: a registry may send the gate for a token only to
// its own host or to a realm host allowed for it (Options.TokenRealms,
// DefaultTokenRealms). A refused realm is never contacted, not even by a
// GET fallback, and the answer is definite and says what to configure.
// An allowed realm host still passes the dial guard.
func TestTokenRealmHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sameHost bool                                                  // realm on the registry's own host:port
		pairs    func(regHost, realmHost string) []verifier.TokenRealm // Options.TokenRealms
		guarded  bool                                                  // realm host not in AllowedHosts
		wantErr  []string                                              // "" = verified; else substrings of a definite error
	}{
		{name: "same host", sameHost: true},
		{
			name:    "another host, not allowed",
			wantErr: []string{"registry.tokenRealms", "{registry: REG, realm: REALM}"},
		},
		{
			name: "another host, allowed for this registry",
			pairs: func(regHost, realmHost string) []verifier.TokenRealm {
				return []verifier.TokenRealm{{Registry: regHost, Realm: realmHost}}
			},
		},
		{
			name: "another host, allowed for another registry only",
			pairs: func(_, realmHost string) []verifier.TokenRealm {
				return []verifier.TokenRealm{{Registry: "registry.example", Realm: realmHost}}
			},
			wantErr: []string{"registry.tokenRealms", "REALM"},
		},
		{
			name: "another host, allowed but in a blocked network",
			pairs: func(regHost, realmHost string) []verifier.TokenRealm {
				return []verifier.TokenRealm{{Registry: regHost, Realm: realmHost}}
			},
			guarded: true,
			wantErr: []string{"allowedHosts"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, alice, d := signedApp(t)
			reg.Tag(t, d, "v1")
			set := newSet(t, 0, authority("alice", alice))
			own, other := &tokenService{anonymous: true}, &tokenService{anonymous: true}
			srv := httptest.NewServer(other)
			t.Cleanup(srv.Close)
			otherHost := strings.Replace(strings.TrimPrefix(srv.URL, "http://"), "127.0.0.1", "localhost", 1)
			realm, tokens := "http://"+otherHost+"/token", other
			if tc.sameHost {
				realm, tokens = "http://"+reg.Host+"/token", own
			}
			reg.SetFault(bearerGate(reg, realm, own))
			opts := verifier.Options{InsecureRegistries: []string{otherHost}}
			if !tc.guarded {
				opts.AllowedHosts = []string{otherHost}
			}
			if tc.pairs != nil {
				opts.TokenRealms = tc.pairs(reg.Host, otherHost)
			}
			v := newVerifier(t, reg, opts)
			ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			_, rerr := v.Resolve(t.Context(), ref)
			res, verr := v.Verify(t.Context(), d, set)
			requests, _ := tokens.counts()
			if tc.wantErr == nil {
				if rerr != nil || outcome(res, verr) != "verified" || requests == 0 {
					t.Fatalf("Resolve: %v; Verify: %s (%v); realm saw %d requests; want both to succeed through the realm", rerr, outcome(res, verr), verr, requests)
				}
				return
			}
			if requests != 0 {
				t.Errorf("the refused realm server saw %d requests, want none", requests)
			}
			if n := count(reg, "GET /v2/team/app/manifests/"); n != 0 {
				t.Errorf("a refused realm was followed by %d manifest GETs, want none: %v", n, reg.RequestLog())
			}
			for _, err := range []error{rerr, verr} {
				if err == nil || verifier.IsUndecided(err) {
					t.Fatalf("err = %v, want a definite error", err)
				}
				for _, w := range tc.wantErr {
					w = strings.NewReplacer("REG", reg.Host, "REALM", otherHost).Replace(w)
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want it to contain %q", err, w)
					}
				}
			}
			t.Log(rerr)
		})
	}
}
