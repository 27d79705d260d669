package policy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/signgate/signgate/internal/imageref"
)

// FuzzDecodeObjects feeds untrusted policy YAML through the loader and the
// compiler: neither may panic, and every policy that decodes must come out
// of compilation (valid or with an error), never vanish.
func FuzzDecodeObjects(f *testing.F) {
	files, _ := filepath.Glob("testdata/trust/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs := newObjects()
		if err := decodeObjects(objs, "fuzz.yaml", data); err != nil {
			return
		}
		c := compiler{gateNamespace: "signgate-system", secrets: func(ns, name string) (map[string][]byte, error) {
			if d, ok := objs.secrets[ns][name]; ok {
				return d, nil
			}
			return nil, errors.New("not found")
		}, trustRootObjs: objs.trustRoots}
		trust, results := c.compile(objs.policies)
		if len(results) != len(objs.policies) {
			t.Fatalf("%d policies decoded, %d compiled", len(objs.policies), len(results))
		}
		n := len(trust.cluster)
		for _, ps := range trust.byNamespace {
			n += len(ps)
		}
		if n != len(objs.policies) {
			t.Fatalf("%d policies decoded, %d in the trust set", len(objs.policies), n)
		}
		for _, repo := range []string{"index.docker.io/library/nginx", "registry.example.com/team-a/app", "localhost:5000/x"} {
			for _, r := range trust.requirements("team-a", map[string]string{"env": "prod"}, imageref.ParseRepo(repo)) {
				if r.Err != nil && r.Mode != ModeEnforce {
					t.Fatalf("invalid %s does not enforce: %+v", r.Policy, r)
				}
			}
		}
	})
}
