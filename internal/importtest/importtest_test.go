package importtest

import "testing"

func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		path, bad string
		want      bool
	}{
		{"net", "net", true},
		{"net/http", "net", true},
		{"network", "net", false},
		{"k8s.io/api/core/v1", "k8s.io/", true},
		{"github.com/sigstore/sigstore-go/pkg/verify", "github.com/sigstore/", true},
		{"github.com/signgate/signgate/verifier/bundle", "github.com/signgate/signgate/verifier", true},
		{"github.com/signgate/signgate/verifierx", "github.com/signgate/signgate/verifier", false},
	} {
		if got := under(tc.path, tc.bad); got != tc.want {
			t.Errorf("under(%q, %q) = %v, want %v", tc.path, tc.bad, got, tc.want)
		}
	}
}

// TestCheckThisPackage: the package's own file imports only the standard
// library, and Check says so without failing.
func TestCheckThisPackage(t *testing.T) {
	Check(t, Rule{Forbid: []string{"github.com/", "k8s.io/"}, Why: "importtest uses only the standard library"})
}
