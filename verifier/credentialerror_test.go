package verifier_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/verifier"
)

// credError is a keychain failure that is not the registry's, as
// internal/cloudauth returns when a cloud token exchange fails.
type credError struct{}

func (credError) Error() string {
	return "ecr credentials for r: AccessDenied: token-service text"
}

func (credError) CredentialProblem() string {
	return "needs ecr credentials from registry.cloudCredentials, which could not be obtained"
}

type failingKeychain struct{}

func (failingKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return nil, credError{}
}

// TestCredentialErrorIsUndecided: when the gate's keychain cannot give
// credentials (a cloud exchange failed), verification and resolution are
// undecided with the keychain's own phrase, never a definite denial and
// never the token service's text.
func TestCredentialErrorIsUndecided(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	v := newVerifier(t, reg, verifier.Options{Keychain: failingKeychain{}})
	set := newSet(t, 1, authority("alice", alice))

	_, err := v.Verify(t.Context(), d, set)
	var u *verifier.UndecidedError
	if !errors.As(err, &u) {
		t.Fatalf("Verify: %v (%T), want an UndecidedError", err, err)
	}
	if got, want := u.Problem(), (credError{}).CredentialProblem(); got != want {
		t.Errorf("Problem() = %q", got)
	}
	if strings.Contains(u.Problem(), "token-service text") {
		t.Errorf("the token service's text reached the reason: %q", u.Problem())
	}

	tag, err := name.NewTag(d.Context().String() + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Resolve(t.Context(), tag); !verifier.IsUndecided(err) {
		t.Fatalf("Resolve: %v, want undecided", err)
	}
}
