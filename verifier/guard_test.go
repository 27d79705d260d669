package verifier_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/verifier"
)

// TestGuardRefusalIsTyped: a registry refused by the network guard comes
// back as a RefusedError of Kind RefusalNetworkGuard whose Guard names the
// host:port and the kind of network, from Resolve and, as
// NotVerifiedError.Refused, from Verify of a digest.
func TestGuardRefusalIsTyped(t *testing.T) {
	t.Parallel()
	reg, alice, d := signedApp(t)
	set := newSet(t, 0, authority("alice", alice))
	tests := []struct {
		name    string
		blocked []netip.Prefix
		network string
		class   string
	}{
		{"default networks: loopback", nil, "loopback", verifier.NetworkLoopback},
		{"configured prefix", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/16")}, "a blocked network 127.0.0.0/16", verifier.NetworkConfigured},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := verifier.New(verifier.Options{InsecureRegistries: []string{reg.Host}, BlockedNetworks: tc.blocked, Timeout: hangGuard})
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, r *verifier.RefusedError) {
				t.Helper()
				if r == nil || r.Kind != verifier.RefusalNetworkGuard || r.Guard == nil {
					t.Fatalf("%s: refusal %+v, want Kind %q with Guard", what, r, verifier.RefusalNetworkGuard)
				}
				g := r.Guard
				if g.Host != reg.Host || g.Class != tc.class || g.Network() != tc.network || !g.Addr.IsLoopback() {
					t.Errorf("%s: Guard = %+v (Network %q), want host %s, class %q, network %q", what, g, g.Network(), reg.Host, tc.class, tc.network)
				}
				if want := "is blocked by the network guard (" + tc.network + ")"; g.Problem() != want {
					t.Errorf("%s: Guard.Problem() = %q, want %q", what, g.Problem(), want)
				}
			}

			ref, err := verifier.ParseReference(reg.Host + "/team/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Resolve(t.Context(), ref)
			var r *verifier.RefusedError
			if !errors.As(err, &r) {
				t.Fatalf("Resolve err = %v (%T), want a RefusedError", err, err)
			}
			check("Resolve", r)

			pinned, err := name.NewDigest(reg.Host+"/team/app@"+d.DigestStr(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(t.Context(), pinned, set)
			var nv *verifier.NotVerifiedError
			if !errors.As(err, &nv) || nv.Reason != "signatures could not be read" {
				t.Fatalf("Verify err = %v (%T), want NotVerifiedError %q", err, err, "signatures could not be read")
			}
			check("Verify", nv.Refused)
			if nv.Refused.Op != "verify" || nv.Refused.Ref != pinned.String() {
				t.Errorf("Refused Op %q Ref %q, want verify %s", nv.Refused.Op, nv.Refused.Ref, pinned)
			}
		})
	}
}
