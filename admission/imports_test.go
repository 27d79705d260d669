package admission

import (
	"testing"

	"github.com/signgate/signgate/internal/importtest"
)

// TestImportBoundaries: admission never classifies registry errors itself.
// The verifier does, once, and returns typed errors (verifier/errors.go);
// admission switches on those types (problem.go) and so has no use for
// go-containerregistry's transport errors or for system call errors, and
// problem.go none for network errors either. And admission knows nothing
// of the commands or of internal/server, which wires it up.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	const why = "classify registry errors in the verifier and switch on its types"
	importtest.Check(t,
		importtest.Rule{Forbid: []string{"github.com/google/go-containerregistry/pkg/v1/remote/transport", "syscall"}, Why: why},
		importtest.Rule{Files: []string{"problem.go"}, Forbid: []string{"net"}, Why: why},
		importtest.Rule{Forbid: []string{"github.com/signgate/signgate/cmd", "github.com/signgate/signgate/internal/server"}, Why: "imports go one way: server wires admission up"},
	)
}
