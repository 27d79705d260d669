package verifier

import (
	"testing"

	"github.com/signgate/signgate/internal/importtest"
)

// TestImportBoundaries keeps the verifier free of its callers
// (docs/architecture.md): it knows nothing of admission, policies,
// commands, internal/server or Kubernetes.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	importtest.Check(t, importtest.Rule{
		Files: []string{"*.go", "bundle/*.go"},
		Forbid: []string{
			"github.com/signgate/signgate/admission",
			"github.com/signgate/signgate/policy",
			"github.com/signgate/signgate/cmd",
			"github.com/signgate/signgate/internal/server",
			"k8s.io/",
		},
		Why: "the verifier must not depend on it",
	})
}
