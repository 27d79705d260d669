package bundle_test

import (
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/verifier/bundle"
)

// conformanceDir holds the sigstore-conformance bundle-verify cases (see
// testdata/conformance/SOURCE).
const conformanceDir = "../testdata/conformance"

const (
	defaultIdentity = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
	defaultIssuer   = "https://token.actions.githubusercontent.com"
)

// conformanceCase is one case directory mapped to inputs the way the suite's
// CLI protocol does (testdata/conformance/run.sh).
type conformanceCase struct {
	Name, Dir                          string
	WantFail                           bool
	Bundle, Artifact, TrustedRoot, Key string // paths; Key empty when keyless
	Identity, Issuer                   string
}

func conformanceCases(t *testing.T) []conformanceCase {
	t.Helper()
	base := filepath.Join(conformanceDir, "test", "assets", "bundle-verify")
	dirs, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	var cases []conformanceCase
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(base, d.Name())
		c := conformanceCase{
			Name: d.Name(), Dir: dir,
			WantFail:    strings.HasSuffix(d.Name(), "_fail"),
			Bundle:      filepath.Join(dir, "bundle.sigstore.json"),
			Artifact:    filepath.Join(base, "a.txt"),
			TrustedRoot: filepath.Join(conformanceDir, "public-good.json"),
			Identity:    defaultIdentity,
			Issuer:      defaultIssuer,
		}
		if exists(filepath.Join(dir, "artifact")) {
			c.Artifact = filepath.Join(dir, "artifact")
		}
		if exists(filepath.Join(dir, "trusted_root.json")) {
			c.TrustedRoot = filepath.Join(dir, "trusted_root.json")
		}
		if exists(filepath.Join(dir, "key.pub")) {
			c.Key = filepath.Join(dir, "key.pub")
		}
		if b, err := os.ReadFile(filepath.Join(dir, "identity")); err == nil {
			c.Identity = string(b)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "issuer")); err == nil {
			c.Issuer = string(b)
		}
		cases = append(cases, c)
	}
	if len(cases) != 70 {
		t.Fatalf("found %d conformance cases, want 70", len(cases))
	}
	return cases
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// runCase verifies one case through the core, as verify-bundle does.
func runCase(c conformanceCase) error {
	data, err := os.ReadFile(c.Bundle)
	if err != nil {
		return err
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return err
	}
	trData, err := os.ReadFile(c.TrustedRoot)
	if err != nil {
		return err
	}
	tr, err := bundle.ParseTrustedRoot(trData)
	if err != nil {
		return err
	}
	art, err := os.ReadFile(c.Artifact)
	if err != nil {
		return err
	}
	var p bundle.Policy
	if c.Key != "" {
		kd, err := os.ReadFile(c.Key)
		if err != nil {
			return err
		}
		var k crypto.PublicKey
		if k, err = authority.ParsePublicKey(kd); err != nil {
			return err
		}
		p.Key = k
	} else {
		p.Identity = &bundle.Identity{SAN: c.Identity, Issuer: c.Issuer}
	}
	_, err = bundle.Verify(b, bundle.Artifact{Data: art}, tr, p)
	return err
}

// TestConformance runs every sigstore-conformance bundle-verify case through
// Verify: a case named *_fail must be rejected, any other accepted.
func TestConformance(t *testing.T) {
	t.Parallel()
	cases := conformanceCases(t)
	var wrong []string
	for _, c := range cases {
		err := runCase(c)
		switch {
		case c.WantFail && err == nil:
			wrong = append(wrong, c.Name+": accepted, want rejected")
		case !c.WantFail && err != nil:
			wrong = append(wrong, c.Name+": rejected: "+err.Error())
		}
	}
	t.Logf("%d of %d sigstore-conformance bundle-verify cases right", len(cases)-len(wrong), len(cases))
	if len(wrong) > 0 {
		t.Errorf("%d wrong:\n%s", len(wrong), strings.Join(wrong, "\n"))
	}
}
