package imageref

import (
	"strings"
	"testing"
)

func TestRepository(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, path string
		want       string
	}{
		{"index.docker.io", "library/nginx", "index.docker.io/library/nginx"},
		{"index.docker.io", "nginx", "index.docker.io/library/nginx"},
		{"docker.io", "nginx", "index.docker.io/library/nginx"},
		{"registry-1.docker.io", "acme/app", "index.docker.io/acme/app"},
		{"Registry-1.Docker.IO:443", "nginx", "index.docker.io/library/nginx"},
		{"docker.io:443", "acme/app", "index.docker.io/acme/app"},
		{"REGISTRY.example.com:443", "app", "registry.example.com/app"},
		{"registry.example.com:4443", "app", "registry.example.com:4443/app"},
		{"registry.example.com:80", "app", "registry.example.com:80/app"},
		{"localhost:5000", "app", "localhost:5000/app"},
		{"[::1]:443", "app", "[::1]/app"},
		{"docker.io.evil.com", "nginx", "docker.io.evil.com/nginx"},
		{"localhost:443", "app", "localhost/app"},
		{"myregistry:443", "app", "myregistry:443/app"}, // "myregistry/app" is Docker Hub
		{"0:443", "0", "0:443/0"},
	}
	for _, tc := range tests {
		t.Run(tc.host+"/"+tc.path, func(t *testing.T) {
			t.Parallel()
			got := Repository(tc.host, tc.path)
			if got != tc.want {
				t.Fatalf("Repository(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
			}
			host, path, _ := strings.Cut(got, "/")
			if !IsCanonical(host, path) {
				t.Errorf("IsCanonical(%q, %q) = false for Repository's own result", host, path)
			}
			if again := Repository(host, path); again != got {
				t.Errorf("Repository is not idempotent: %q → %q", got, again)
			}
			if IsCanonical(tc.host, tc.path) != (tc.host+"/"+tc.path == tc.want) {
				t.Errorf("IsCanonical(%q, %q) = %v, want %v", tc.host, tc.path, !(tc.host+"/"+tc.path == tc.want), tc.host+"/"+tc.path == tc.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, host, path string }{
		{"nginx", DockerHub, "nginx"},
		{"acme/app", DockerHub, "acme/app"},
		{"localhost/app", "localhost", "app"},
		{"localhost:5000/app", "localhost:5000", "app"},
		{"registry.example.com/a/b", "registry.example.com", "a/b"},
		{"registry.example.com", DockerHub, "registry.example.com"},
	}
	for _, tc := range tests {
		if host, path := Split(tc.in); host != tc.host || path != tc.path {
			t.Errorf("Split(%q) = %q, %q, want %q, %q", tc.in, host, path, tc.host, tc.path)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host, path string
		wantErr    string // substring; "" = valid
	}{
		{"registry.example.com", "team/app", ""},
		{"Registry.Example.com:5000", "a.b/c_d/e__f/g-h/i---j/0", ""},
		{"localhost", "app", ""},
		{"[::1]:5000", "app", ""},
		{"[fe80::1]", "app", ""},
		{"127.0.0.1:5000", "app", ""},
		{"registry.example.com", "", "empty"},
		{"registry.example.com", "a//b", "empty path component"},
		{"registry.example.com", "a/", "empty path component"},
		{"registry.example.com", "/a", "empty path component"},
		{"registry.example.com", "a..b", `invalid separator ".."`},
		{"registry.example.com", "a._b", `invalid separator "._"`},
		{"registry.example.com", "a___b", `invalid separator "___"`},
		{"registry.example.com", "-a", "must start and end"},
		{"registry.example.com", "a_", "must start and end"},
		{"registry.example.com", "A", "must start and end"},
		{"registry.example.com", "a$b", `invalid separator "$"`},
		{"registry..example.com", "app", `invalid label ""`},
		{"-registry.example.com", "app", `invalid label "-registry"`},
		{"registry_x.example.com", "app", `invalid label "registry_x"`},
		{"registry.example.com:", "app", "port"},
		{"registry.example.com:https", "app", "port"},
		{"[zz]:5000", "app", "IPv6"},
		{"", "app", "empty host"},
		{"r.io", strings.Repeat("a", 251), "want at most 255"},
	}
	for _, tc := range tests {
		t.Run(tc.host+"/"+tc.path, func(t *testing.T) {
			t.Parallel()
			err := Check(tc.host, tc.path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Check(%q, %q) = %v, want nil", tc.host, tc.path, err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Check(%q, %q) = nil, want an error containing %q", tc.host, tc.path, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Check(%q, %q) = %v, want an error containing %q", tc.host, tc.path, err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), "want "):
				t.Errorf("Check(%q, %q) = %v: the error does not say what a valid name looks like", tc.host, tc.path, err)
			}
		})
	}
}

func TestHostDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		_ = IsCanonical("registry.example.com:5000", "team/app")
		_ = Host("index.docker.io")
	}); n != 0 {
		t.Errorf("IsCanonical and Host on canonical input allocate %v times, want 0", n)
	}
}

func TestParseRepo(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                          "index.docker.io/library/nginx",
		"Docker.io/acme/app":             "index.docker.io/acme/app",
		"registry-1.docker.io:443/nginx": "index.docker.io/library/nginx",
		"Quay.io:443/team/app":           "quay.io/team/app",
		"localhost:5000/x":               "localhost:5000/x",
		"quay.io/team/app":               "quay.io/team/app",
	} {
		if got := ParseRepo(in).String(); got != want {
			t.Errorf("ParseRepo(%q) = %q, want %q", in, got, want)
		}
		if got := RepoOf(Split(in)); got != ParseRepo(in) {
			t.Errorf("RepoOf(Split(%q)) = %q, want ParseRepo's %q", in, got, ParseRepo(in))
		}
	}
	canonical := "registry.example.com:5000/team/app"
	if n := testing.AllocsPerRun(100, func() { _ = ParseRepo(canonical) }); n != 0 {
		t.Errorf("ParseRepo on a canonical name allocates %v times, want 0", n)
	}
}

func TestParseMirror(t *testing.T) {
	for _, tc := range []struct{ in, host, prefix, err string }{
		{in: "mirror.corp.example/dockerhub", host: "mirror.corp.example", prefix: "dockerhub"},
		{in: "Mirror.Corp.Example:5000", host: "mirror.corp.example:5000"},
		{in: "docker.io/a/b", host: DockerHub, prefix: "a/b"},
		{in: "m.example:443/p", host: "m.example", prefix: "p"},
		{in: "", err: "want host[:port][/path prefix]"},
		{in: "https://m.example", err: "without scheme"},
		{in: "u@m.example", err: "without scheme, credentials"},
		{in: "m.example/", err: "empty"},
		{in: "m.example/Upper", err: "path component"},
		{in: "m_x.example", err: "invalid label"},
	} {
		host, prefix, err := ParseMirror(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMirror(%q) = %v, want an error containing %q", tc.in, err, tc.err)
			}
		case err != nil || host != tc.host || prefix != tc.prefix:
			t.Errorf("ParseMirror(%q) = %q, %q, %v; want %q, %q", tc.in, host, prefix, err, tc.host, tc.prefix)
		}
	}
}
