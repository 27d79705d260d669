package verifier_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/verifier"
)

// basicAuth makes every request to the registry need user:pass (HTTP
// basic), as a private registry does: 401 with a Basic challenge
// otherwise.
func basicAuth(user, pass string) registrytest.Fault {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return func(w http.ResponseWriter, req *http.Request) bool {
		if req.Header.Get("Authorization") == want {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"secret-bearing registry body"}]}`, http.StatusUnauthorized)
		return true
	}
}

// keychainFor gives user:pass to host only.
type keychainFor struct{ host, user, pass string }

func (k keychainFor) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
	}
	return authn.Anonymous, nil
}

// TestCredentialIsolation: namespace A holds a pull secret for a private
// registry, namespace B none (or a wrong one). A resolves and verifies
// the private image; B, asking right after for the same tag and digest,
// is denied access — what A's credentials learned (the tag's digest, the
// verdict) is cached for them alone — and B's denial names the
// credentials that were tried, without the registry's response body.
// Equal credentials share their cache whoever holds them; reads of a
// registry A's keychain has nothing for stay shared with the gate's own.
func TestCredentialIsolation(t *testing.T) {
	t.Parallel()
	alice := registrytest.NewSigner(t)
	private := registrytest.New(t)
	d := private.PushImage(t, "team/app", "v1")
	private.Sign(t, alice, d, registrytest.Classic)
	private.SetFault(basicAuth("team-a", "s3cret"))
	public := registrytest.New(t)
	pd := public.PushImage(t, "lib/base", "v1")
	public.Sign(t, alice, pd, registrytest.Classic)

	v := newVerifier(t, private, verifier.Options{InsecureRegistries: []string{public.Host}, AllowedHosts: []string{public.Host}})
	set := newSet(t, 1, authority("alice", alice))
	credA := &verifier.Credential{Keychain: keychainFor{private.Host, "team-a", "s3cret"}, Name: `imagePullSecrets "regcred" of namespace a`}
	credB := &verifier.Credential{Keychain: keychainFor{private.Host, "team-a", "wrong"}, Name: `imagePullSecrets "regcred" of namespace b`}
	sameAsA := &verifier.Credential{Keychain: keychainFor{private.Host, "team-a", "s3cret"}, Name: `imagePullSecrets "copy" of namespace c`}
	tag, err := name.NewTag(private.Host+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	if got, err := v.ResolveWith(ctx, tag, credA); err != nil || got.DigestStr() != d.DigestStr() {
		t.Fatalf("A resolves: %v, %v", got, err)
	}
	if res, err := v.VerifyWith(ctx, d, set, credA); err != nil || len(res.Verified) != 1 {
		t.Fatalf("A verifies: %+v, %v", res, err)
	}

	for _, tc := range []struct {
		who  string
		cred *verifier.Credential
		name string
	}{{"B, wrong password", credB, credB.Name}, {"the gate's own (anonymous)", nil, ""}} {
		if _, ok := v.ResolveCachedWith(tag, tc.cred); ok {
			t.Errorf("%s: A's tag resolution is cached for it", tc.who)
		}
		_, err := v.ResolveWith(ctx, tag, tc.cred)
		var ad *verifier.AccessDeniedError
		if !errors.As(err, &ad) || ad.Credential != tc.name {
			t.Errorf("%s resolves: %v, want access denied with credential %q", tc.who, err, tc.name)
		}
		if _, ok, _ := v.CachedWith(d, set, tc.cred); ok {
			t.Errorf("%s: A's verdict is cached for it", tc.who)
		}
		_, err = v.VerifyWith(ctx, d, set, tc.cred)
		var nv *verifier.NotVerifiedError
		if !errors.As(err, &nv) || !nv.AccessDenied || nv.Credential != tc.name {
			t.Errorf("%s verifies: %v, want access denied with credential %q", tc.who, err, tc.name)
		}
		if err != nil && strings.Contains(err.Error(), "secret-bearing") {
			t.Errorf("%s: the error echoes the registry's body: %v", tc.who, err)
		}
	}

	// The same credentials under another name share A's answers.
	private.ResetRequests()
	if res, ok, err := v.CachedWith(d, set, sameAsA); !ok || err != nil || len(res.Verified) != 1 {
		t.Errorf("equal credentials: cached = %v, %+v, %v; want A's verdict", ok, res, err)
	}
	if _, ok := v.ResolveCachedWith(tag, sameAsA); !ok {
		t.Error("equal credentials: A's tag resolution not shared")
	}
	if n := private.Requests(); n != 0 {
		t.Errorf("equal credentials made %d registry requests", n)
	}

	// A registry A's keychain has nothing for is read with the gate's own
	// credentials, and cached for everyone.
	if res, err := v.VerifyWith(ctx, pd, set, credA); err != nil || len(res.Verified) != 1 {
		t.Fatalf("A verifies a public image: %+v, %v", res, err)
	}
	if res, ok, err := v.Cached(pd, set); !ok || err != nil || len(res.Verified) != 1 {
		t.Errorf("public image verified with A's keychain: shared cache = %v, %+v, %v", ok, res, err)
	}
}
