package server

import (
	"slices"
	"testing"
	"time"

	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// TestVerifierOptionsProxy: registry.proxy reaches the verifier; without it
// the verifier gets no proxy (and ignores the environment's).
func TestVerifierOptionsProxy(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"no proxy", head, ""},
		{"proxy", head + "registry: {proxy: \"http://proxy.example:3128\"}\n", "http://proxy.example:3128"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := policy.ParseConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if u := VerifierOptions(cfg).Proxy; u != nil {
				got = u.String()
			}
			if got != tc.want {
				t.Errorf("VerifierOptions().Proxy = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVerifierOptionsTokenRealms: registry.tokenRealms reaches the
// verifier (which adds its built-in pairs itself).
func TestVerifierOptionsTokenRealms(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n"
	tests := []struct {
		name string
		yaml string
		want []verifier.TokenRealm
	}{
		{"none", head, nil},
		{"one pair", head + "registry: {tokenRealms: [{registry: registry.corp.example, realm: sso.corp.example}]}\n",
			[]verifier.TokenRealm{{Registry: "registry.corp.example", Realm: "sso.corp.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := policy.ParseConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := VerifierOptions(cfg).TokenRealms; !slices.Equal(got, tc.want) {
				t.Errorf("VerifierOptions().TokenRealms = %v, want %v", got, tc.want)
			}
		})
	}
}
func TestVerifierTagTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{0, -1},                              // configuration 0 = disabled = verifier's negative
		{15 * time.Second, 15 * time.Second}, // passed through
	} {
		if got := verifierTagTTL(tc.in); got != tc.want {
			t.Errorf("verifierTagTTL(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
