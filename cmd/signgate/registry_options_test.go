package main

import (
	"testing"

	"github.com/signgate/signgate/policy"
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
			if u := verifierOptions(cfg).Proxy; u != nil {
				got = u.String()
			}
			if got != tc.want {
				t.Errorf("verifierOptions().Proxy = %q, want %q", got, tc.want)
			}
		})
	}
}
