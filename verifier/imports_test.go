package verifier

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportBoundaries keeps the verifier free of its callers
// (docs/architecture.md): it knows nothing of admission, policies,
// commands or Kubernetes.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"github.com/signgate/signgate/admission",
		"github.com/signgate/signgate/policy",
		"github.com/signgate/signgate/cmd",
		"k8s.io/",
	}
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
			for _, bad := range forbidden {
				if strings.HasPrefix(path, bad) {
					t.Errorf("%s imports %s; the verifier must not depend on it", f, path)
				}
			}
		}
	}
}
