package convert

import (
	"testing"

	"github.com/signgate/signgate/internal/importtest"
)

// TestImportBoundaries: convert writes policies, it does not run the gate
// (docs/architecture.md).
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	importtest.Check(t, importtest.Rule{
		Forbid: []string{
			"github.com/signgate/signgate/verifier",
			"github.com/signgate/signgate/admission",
			"github.com/signgate/signgate/cmd",
			"github.com/signgate/signgate/internal/server",
			"github.com/google/go-containerregistry/pkg/v1/remote",
		},
		Why: "convert must not depend on it",
	})
}
