package policy

import (
	"testing"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		glob string
		repo string
		want bool
	}{
		{"literal", "registry.example.com/team/app", "registry.example.com/team/app", true},
		{"literal other", "registry.example.com/team/app", "registry.example.com/team/app2", false},
		{"star within segment", "registry.example.com/team/*", "registry.example.com/team/app", true},
		{"star not across segments", "registry.example.com/team/*", "registry.example.com/team/a/b", false},
		{"star needs the segment", "registry.example.com/team/*", "registry.example.com/team", false},
		{"star prefix", "registry.example.com/team/app-*", "registry.example.com/team/app-web", true},
		{"star prefix mismatch", "registry.example.com/team/app-*", "registry.example.com/team/db", false},
		{"two stars", "registry.example.com/*/*-svc", "registry.example.com/a/b-svc", true},
		{"doublestar one", "registry.example.com/team/**", "registry.example.com/team/app", true},
		{"doublestar deep", "registry.example.com/team/**", "registry.example.com/team/a/b/c", true},
		{"trailing doublestar not the parent", "registry.example.com/team/**", "registry.example.com/team", false},
		{"doublestar not sibling prefix", "registry.example.com/team/**", "registry.example.com/team-b/app", false},
		{"middle doublestar zero", "registry.example.com/**/app", "registry.example.com/app", true},
		{"middle doublestar many", "registry.example.com/**/app", "registry.example.com/a/b/app", true},
		{"middle doublestar wrong leaf", "registry.example.com/**/app", "registry.example.com/a/b/app2", false},
		{"everything", "**", "index.docker.io/library/nginx", true},
		{"everything with port", "**", "localhost:5000/x", true},
		{"leading doublestar", "**/nginx", "quay.io/x/nginx", true},

		// Hosts match on whole labels.
		{"docker.io not a prefix", "docker.io/*", "docker.io.evil.com/x", false},
		{"docker.io doublestar not a prefix", "docker.io/**", "docker.io.evil.com/x/y", false},
		{"host suffix", "example.com/**", "evilexample.com/x", false},
		{"host star one label", "*.example.com/**", "a.example.com/x", true},
		{"host star not two labels", "*.example.com/**", "a.b.example.com/x", false},
		{"host star not zero labels", "*.example.com/**", "example.com/x", false},
		{"host star not evil suffix", "registry.*/**", "registry.example.com/x", false},
		{"host star label", "registry.*.com/**", "registry.example.com/x", true},

		// Case: hosts are case-insensitive, paths are lower-case.
		{"upper-case glob host", "Registry.Example.COM/team/*", "registry.example.com/team/app", true},
		{"upper-case repo host", "registry.example.com/team/*", "REGISTRY.example.com/team/app", true},

		// Ports.
		{"port literal", "registry.example.com:5000/**", "registry.example.com:5000/x", true},
		{"port differs", "registry.example.com:5000/**", "registry.example.com:5001/x", false},
		{"no port in glob", "registry.example.com/**", "registry.example.com:5000/x", false},
		{"port in glob only", "registry.example.com:5000/**", "registry.example.com/x", false},
		{"port star", "localhost:*/**", "localhost:5000/x", true},
		{"port star not without port", "localhost:*/**", "localhost/x", false},
		{"host star not the port", "localhost*/**", "localhost:5000/x", false},
		{"ip and port", "127.0.0.1:5000/team/*", "127.0.0.1:5000/team/app", true},

		// Docker Hub short names, canonicalized like references.
		{"short official", "nginx", "index.docker.io/library/nginx", true},
		{"docker.io official", "docker.io/nginx", "index.docker.io/library/nginx", true},
		{"index.docker.io official", "index.docker.io/nginx", "index.docker.io/library/nginx", true},
		{"docker.io star is official images", "docker.io/*", "index.docker.io/library/nginx", true},
		{"docker.io star not orgs", "docker.io/*", "index.docker.io/acme/app", false},
		{"docker.io doublestar is all of hub", "docker.io/**", "index.docker.io/acme/app", true},
		{"short org", "acme/*", "index.docker.io/acme/app", true},
		{"short org elsewhere", "acme/*", "quay.io/acme/app", false},
		{"upper-case docker.io", "Docker.IO/library/*", "index.docker.io/library/nginx", true},
		{"repo short form", "index.docker.io/library/nginx", "nginx", true},
		{"repo docker.io form", "index.docker.io/acme/*", "docker.io/acme/app", true},
		{"localhost is a host", "localhost/app", "localhost/app", true},
		{"localhost not hub", "localhost/app", "index.docker.io/localhost/app", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := CompileGlob(tt.glob)
			if err != nil {
				t.Fatalf("CompileGlob(%q): %v", tt.glob, err)
			}
			if got := g.Match(tt.repo); got != tt.want {
				t.Errorf("CompileGlob(%q).Match(%q) = %v, want %v", tt.glob, tt.repo, got, tt.want)
			}
		})
	}
}

func TestCompileGlobInvalid(t *testing.T) {
	t.Parallel()
	for _, glob := range []string{
		"",
		"/",
		"registry.example.com/",
		"registry.example.com//x",
		"registry.example.com/a**",
		"registry.example.com/***",
		"registry.example.com/Team/app",
		"registry.example.com/team/app:tag",
		"registry.example.com/team/app@sha256",
		"registry.example.com/te?m",
		"registry.example.com/[ab]",
		"reg_istry.example.com/x",
		"NGINX",
		"registry.example.com/a..b",
		"registry.example.com/-app/**",
		"registry.example.com/app_/*",
		"registry..example.com/**",
		"registry.example.com:https/**",
	} {
		if _, err := CompileGlob(glob); err == nil {
			t.Errorf("CompileGlob(%q) = nil error, want an error", glob)
		}
	}
}

// TestCanonicalGlob pins the canonicalization of globs (internal/imageref,
// shared with verifier.ParseReference; admission's
// TestCanonicalRepositoryAgrees checks that the two sides agree).
func TestCanonicalGlob(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nginx":                           "index.docker.io/library/nginx",
		"acme/app":                        "index.docker.io/acme/app",
		"docker.io/nginx":                 "index.docker.io/library/nginx",
		"docker.io/acme/app":              "index.docker.io/acme/app",
		"index.docker.io/nginx":           "index.docker.io/library/nginx",
		"Docker.IO/Acme":                  "index.docker.io/library/Acme",
		"docker.io/**":                    "index.docker.io/**",
		"REGISTRY.example.com:5000/a/b":   "registry.example.com:5000/a/b",
		"localhost/app":                   "localhost/app",
		"localhost:5000/app":              "localhost:5000/app",
		"registry.example.com/app":        "registry.example.com/app",
		"**/app":                          "**/app",
		"index.docker.io/library/nginx":   "index.docker.io/library/nginx",
		"gcr.io/distroless/static-debian": "gcr.io/distroless/static-debian",
		"registry.example.com:443/**":     "registry.example.com/**",
		"Registry.Example.com:443/a/*":    "registry.example.com/a/*",
		"registry-1.docker.io/nginx":      "index.docker.io/library/nginx",
		"registry-1.docker.io/**":         "index.docker.io/**",
		"index.docker.io:443/acme/*":      "index.docker.io/acme/*",
		"registry.example.com:4443/app":   "registry.example.com:4443/app",
	} {
		if got := canonicalGlob(in); got != want {
			t.Errorf("canonicalGlob(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkGlobMatch(b *testing.B) {
	g, err := CompileGlob("registry.example.com/team-*/**")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !g.Match("registry.example.com/team-a/sub/app") {
			b.Fatal("no match")
		}
	}
}
