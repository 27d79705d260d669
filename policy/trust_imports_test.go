package policy

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportBoundaries keeps policy pure (docs/architecture.md): no verifier, no
// admission, no registry or signature code in policy or policy/v1alpha1.
func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"github.com/signgate/signgate/verifier",
		"github.com/signgate/signgate/admission",
		"github.com/signgate/signgate/cmd",
		"github.com/google/go-containerregistry/pkg/v1/remote",
		"github.com/sigstore/",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("v1alpha1/*.go")
	for _, f := range append(files, more...) {
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
					t.Errorf("%s imports %s; policy must not depend on it", f, path)
				}
			}
		}
	}
}
