package policy

import (
	"testing"

	"github.com/signgate/signgate/internal/importtest"
)

// TestImportBoundaries keeps policy pure (docs/architecture.md): no verifier, no
// admission, no internal/server, no registry or signature code in policy
// or policy/v1alpha1. The one sigstore package allowed is sigstore-go's
// root, to parse a TrustRoot's trusted_root.json into trust material
// (policy/trust_roots.go); verification stays in verifier.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	importtest.Check(t, importtest.Rule{
		Files: []string{"*.go", "v1alpha1/*.go"},
		Forbid: []string{
			"github.com/signgate/signgate/verifier",
			"github.com/signgate/signgate/admission",
			"github.com/signgate/signgate/cmd",
			"github.com/signgate/signgate/internal/server",
			"github.com/google/go-containerregistry/pkg/v1/remote",
			"github.com/sigstore/",
		},
		Allow: []string{"github.com/sigstore/sigstore-go/pkg/root"},
		Why:   "policy must not depend on it",
	})
}
