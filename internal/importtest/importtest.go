// Package importtest keeps a package's import boundaries
// (docs/architecture.md) in its tests: one check, used by every package
// that has a boundary to keep.
package importtest

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Rule forbids imports in the non-test Go files that match Files (globs
// relative to the package directory; default "*.go"). An entry of Forbid
// matches an import path equal to it or under it ("net" matches "net" and
// "net/http"; "k8s.io/" matches everything below k8s.io). An entry of
// Allow, matched the same way, exempts an import Forbid would catch
// ("github.com/sigstore/" forbidden, one package of it allowed). Why
// completes the failure message: what to do instead.
type Rule struct {
	Files  []string
	Forbid []string
	Allow  []string
	Why    string
}

// Check fails t for every import a rule forbids.
func Check(t testing.TB, rules ...Rule) {
	t.Helper()
	for _, r := range rules {
		globs := r.Files
		if len(globs) == 0 {
			globs = []string{"*.go"}
		}
		for _, g := range globs {
			files, err := filepath.Glob(g)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				for _, path := range imports(t, f) {
					if slices.ContainsFunc(r.Allow, func(ok string) bool { return under(path, ok) }) {
						continue
					}
					for _, bad := range r.Forbid {
						if under(path, bad) {
							t.Errorf("%s imports %s; %s", f, path, r.Why)
						}
					}
				}
			}
		}
	}
}

// under reports whether path is bad or below it.
func under(path, bad string) bool {
	bad = strings.TrimSuffix(bad, "/")
	return path == bad || strings.HasPrefix(path, bad+"/")
}

func imports(t testing.TB, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(f.Imports))
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}
