package cloudauth

import (
	"testing"

	"github.com/signgate/signgate/internal/importtest"
)

// TestImportBoundaries: cloudauth knows registry hosts and clouds, not
// the gate (docs/architecture.md); cloudhost depends on nothing, so that
// policy can use it without linking the clouds' SDKs.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	importtest.Check(t, importtest.Rule{
		Files: []string{"*.go"},
		Forbid: []string{
			"github.com/signgate/signgate/verifier",
			"github.com/signgate/signgate/admission",
			"github.com/signgate/signgate/policy",
			"github.com/signgate/signgate/cmd",
			"github.com/signgate/signgate/internal/server",
		},
		Why: "cloudauth must not depend on it",
	})
	importtest.Check(t, importtest.Rule{
		Files:  []string{"cloudhost/*.go"},
		Forbid: []string{"github.com/"},
		Why:    "cloudhost must stay free of dependencies",
	})
}
