package admission

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportBoundaries: admission never classifies registry errors itself.
// The verifier does, once, and returns typed errors (verifier/errors.go);
// admission switches on those types (problem.go) and so has no use for
// go-containerregistry's transport errors or for system call errors, and
// problem.go none for network errors either.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"github.com/google/go-containerregistry/pkg/v1/remote/transport",
		"syscall",
	}
	forbiddenIn := map[string][]string{"problem.go": {"net"}}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range append(forbidden, forbiddenIn[f]...) {
				if path == bad {
					t.Errorf("%s imports %s; classify registry errors in the verifier and switch on its types", f, path)
				}
			}
		}
	}
}
