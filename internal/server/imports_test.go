package server

import (
	"testing"

	"github.com/signgate/signgate/internal/importtest"
)

// TestImportBoundaries keeps imports one way (docs/architecture.md):
// server may import admission, policy, verifier and internal packages, but
// never a command or the test harnesses; admission, policy and verifier
// never import server (their own TestImportBoundaries).
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	importtest.Check(t, importtest.Rule{
		Forbid: []string{
			"github.com/signgate/signgate/cmd",
			"github.com/signgate/signgate/e2e",
		},
		Why: "server is shared by cmd/signgate and e2e/load and must not depend on either",
	})
}
