package admission

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

const spellingDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestCanonicalRepositoryAgrees runs one corpus of repository spellings
// through the policy side (a glob written as the repository, and a
// repository handed to Glob.Match) and the verifier side (ParseReference
// and Repository, as the admission reference cache calls them): both must
// reject the same strings and agree on the canonical repository of the
// rest (issue 27: one host, several spellings).
func TestCanonicalRepositoryAgrees(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // canonical repository; "" = rejected by both sides
	}{
		{in: "nginx", want: "index.docker.io/library/nginx"},
		{in: "library/nginx", want: "index.docker.io/library/nginx"},
		{in: "acme/app", want: "index.docker.io/acme/app"},
		{in: "docker.io/nginx", want: "index.docker.io/library/nginx"},
		{in: "docker.io/library/nginx", want: "index.docker.io/library/nginx"},
		{in: "Docker.IO/acme/app", want: "index.docker.io/acme/app"},
		{in: "index.docker.io/nginx", want: "index.docker.io/library/nginx"},
		{in: "index.docker.io:443/library/nginx", want: "index.docker.io/library/nginx"},
		{in: "registry-1.docker.io/library/nginx", want: "index.docker.io/library/nginx"},
		{in: "registry-1.docker.io/nginx", want: "index.docker.io/library/nginx"},
		{in: "Registry-1.Docker.IO:443/acme/app", want: "index.docker.io/acme/app"},
		{in: "docker.io:443/nginx", want: "index.docker.io/library/nginx"},
		{in: "registry.example.com/app", want: "registry.example.com/app"},
		{in: "registry.example.com:443/app", want: "registry.example.com/app"},
		{in: "REGISTRY.Example.com:443/team/app", want: "registry.example.com/team/app"},
		{in: "registry.example.com:5000/team/app", want: "registry.example.com:5000/team/app"},
		{in: "registry.example.com:4430/app", want: "registry.example.com:4430/app"},
		{in: "registry.example.com:80/app", want: "registry.example.com:80/app"},
		{in: "localhost/app", want: "localhost/app"},
		{in: "localhost:443/app", want: "localhost/app"},
		{in: "myregistry:443/app", want: "myregistry:443/app"}, // not Docker Hub's myregistry/app
		{in: "localhost:5000/app", want: "localhost:5000/app"},
		{in: "127.0.0.1:5000/app", want: "127.0.0.1:5000/app"},
		{in: "ghcr.io/org/web.frontend_v2__x-y--z/app", want: "ghcr.io/org/web.frontend_v2__x-y--z/app"},
		// Rejected by the distribution reference grammar.
		{in: "registry.example.com/a..b"},
		{in: "registry.example.com/a//b"},
		{in: "registry.example.com//app"},
		{in: "registry.example.com/app/"},
		{in: "registry.example.com/"},
		{in: "registry.example.com/-app"},
		{in: "registry.example.com/app-"},
		{in: "registry.example.com/a___b"},
		{in: "registry.example.com/a._b"},
		{in: "registry.example.com/.app"},
		{in: "registry.example.com/App"},
		{in: "UPPER/case"},
		{in: "registry..example.com/app"},
		{in: "-registry.example.com/app"},
		{in: "registry.example.com:/app"},
		{in: "registry.example.com:https/app"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			// Verifier side, with a tag, a digest and neither.
			for _, image := range []string{tc.in, tc.in + ":v1", tc.in + "@" + spellingDigest} {
				ref, err := verifier.ParseReference(image)
				if tc.want == "" {
					if err == nil {
						t.Errorf("verifier.ParseReference(%q) = %s, want an error", image, ref)
					}
					continue
				}
				if err != nil {
					t.Errorf("verifier.ParseReference(%q): %v", image, err)
					continue
				}
				if got := verifier.Repository(ref).String(); got != tc.want {
					t.Errorf("verifier.Repository(ParseReference(%q)) = %q, want %q", image, got, tc.want)
				}
				if p := newRefCache().parse(image); p.repo.String() != tc.want {
					t.Errorf("admission repository of %q = %q, want %q", image, p.repo, tc.want)
				}
			}

			// Policy side: the repository written as a glob.
			g, err := policy.CompileGlob(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Errorf("policy.CompileGlob(%q) = nil error, want an error as the verifier rejects it", tc.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("policy.CompileGlob(%q): %v", tc.in, err)
			}
			// A literal glob matches exactly one canonical repository, so
			// these two matches pin both canonical forms to tc.want.
			if !g.Match(tc.want) {
				t.Errorf("glob %q does not match %q: the policy canonicalizes the glob differently", tc.in, tc.want)
			}
			want, err := policy.CompileGlob(tc.want)
			if err != nil {
				t.Fatalf("policy.CompileGlob(%q): %v", tc.want, err)
			}
			if !want.Match(tc.in) {
				t.Errorf("glob %q does not match repository %q: the policy canonicalizes repositories differently", tc.want, tc.in)
			}
		})
	}
}

// spellingPolicies enforce (static fail, so no registry is needed) on
// repositories written in one spelling each.
const spellingPolicies = `apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: example}
spec:
  images: [{glob: "registry.example.com/**"}]
  static: {action: fail}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: hub-nginx}
spec:
  images: [{glob: "docker.io/library/nginx"}]
  static: {action: fail}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: hub-alias}
spec:
  images: [{glob: "registry-1.docker.io/library/busybox"}]
  static: {action: fail}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: legacy-port}
spec:
  images: [{glob: "Legacy.Example.com:443/**"}]
  static: {action: fail}
`

func newSpellingGate(t *testing.T, unmatched policy.UnmatchedAction) *Gate {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policies.yaml"), []byte(spellingPolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := policy.NewFileSource(dir, policy.FileOptions{GateNamespace: "signgate-system"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.ParseConfig([]byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nunmatchedImages: " + string(unmatched) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGate(Options{Verifier: nopVerifier{}, Policies: src, Config: StaticConfig{Config: cfg}, Namespace: "signgate-system"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSpellingsMatchEnforcedPolicy: another spelling of a repository an
// enforced policy covers (":443", a Docker Hub alias, upper case) is
// matched by that policy, so unmatchedImages warn or allow cannot be used
// to bypass it, and a glob in one spelling covers the others.
func TestSpellingsMatchEnforcedPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		image      string
		wantPolicy string
	}{
		{"registry.example.com/app@" + spellingDigest, "example"},
		{"registry.example.com:443/app@" + spellingDigest, "example"},
		{"Registry.Example.COM:443/team/app@" + spellingDigest, "example"},
		{"nginx@" + spellingDigest, "hub-nginx"},
		{"registry-1.docker.io/library/nginx@" + spellingDigest, "hub-nginx"},
		{"registry-1.docker.io/nginx:1.27@" + spellingDigest, "hub-nginx"},
		{"index.docker.io:443/library/nginx@" + spellingDigest, "hub-nginx"},
		{"busybox@" + spellingDigest, "hub-alias"},
		{"docker.io/library/busybox@" + spellingDigest, "hub-alias"},
		{"legacy.example.com/app@" + spellingDigest, "legacy-port"},
		{"legacy.example.com:443/app@" + spellingDigest, "legacy-port"},
	}
	for _, unmatched := range []policy.UnmatchedAction{policy.UnmatchedAllow, policy.UnmatchedWarn} {
		g := newSpellingGate(t, unmatched)
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%s", unmatched, tc.image), func(t *testing.T) {
				// The repository admission hands to the policy snapshot.
				parsed := g.refs.parse(tc.image)
				if parsed.err != nil {
					t.Fatalf("parse %q: %v", tc.image, parsed.err)
				}
				reqs := g.policies.Snapshot().Requirements("team-a", map[string]string{}, parsed.repo)
				if len(reqs) != 1 || reqs[0].Policy != "ClusterImagePolicy "+tc.wantPolicy {
					var got []string
					for _, r := range reqs {
						got = append(got, r.Policy)
					}
					t.Fatalf("policies for %q (repository %q) = %v, want [%s]", tc.image, parsed.repo, got, tc.wantPolicy)
				}

				// And the whole review: the static fail denies it.
				pod := fmt.Sprintf(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":%q}]}}`, tc.image)
				rec := postReview(t, g, strings.Replace(podReview, "%s", pod, 1))
				if !strings.Contains(rec, `"allowed":false`) || !strings.Contains(rec, "rejected by ClusterImagePolicy "+tc.wantPolicy) {
					t.Errorf("review of %q with unmatchedImages %s = %s, want a denial by %s", tc.image, unmatched, rec, tc.wantPolicy)
				}
			})
		}
	}
}

// postReview sends review to g's validating handler and returns the body.
func postReview(t *testing.T, g *Gate, review string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(review))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	NewHandler(g, WebhookValidate, HandlerOptions{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}
