package verifier_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/verifier"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		want     string
		wantRepo string
		wantErr  bool
	}{
		{in: "nginx", want: "index.docker.io/library/nginx:latest", wantRepo: "index.docker.io/library/nginx"},
		{in: "nginx:1.27", want: "index.docker.io/library/nginx:1.27", wantRepo: "index.docker.io/library/nginx"},
		{in: "docker.io/nginx", want: "index.docker.io/library/nginx:latest", wantRepo: "index.docker.io/library/nginx"},
		{in: "DOCKER.IO/nginx", want: "index.docker.io/library/nginx:latest", wantRepo: "index.docker.io/library/nginx"},
		{in: "docker.io/bitnami/redis:7", want: "index.docker.io/bitnami/redis:7", wantRepo: "index.docker.io/bitnami/redis"},
		{in: "index.docker.io/nginx", want: "index.docker.io/library/nginx:latest", wantRepo: "index.docker.io/library/nginx"},
		{in: "Registry.Example.COM:5000/team/app:v1", want: "registry.example.com:5000/team/app:v1", wantRepo: "registry.example.com:5000/team/app"},
		{in: "ghcr.io/org/app@" + digest, want: "ghcr.io/org/app@" + digest, wantRepo: "ghcr.io/org/app"},
		{in: "ghcr.io/org/app:v1@" + digest, want: "ghcr.io/org/app@" + digest, wantRepo: "ghcr.io/org/app"},
		{in: "nginx:latest@" + digest, want: "index.docker.io/library/nginx@" + digest, wantRepo: "index.docker.io/library/nginx"},
		{in: "127.0.0.1:5000/app", want: "127.0.0.1:5000/app:latest", wantRepo: "127.0.0.1:5000/app"},
		{in: "registry.example.com:443/app@" + digest, want: "registry.example.com/app@" + digest, wantRepo: "registry.example.com/app"},
		{in: "registry-1.docker.io/library/nginx:1", want: "index.docker.io/library/nginx:1", wantRepo: "index.docker.io/library/nginx"},
		{in: "Registry-1.Docker.io:443/nginx", want: "index.docker.io/library/nginx:latest", wantRepo: "index.docker.io/library/nginx"},
		{in: "", wantErr: true},
		{in: "registry.example.com/a..b", wantErr: true},
		{in: "registry.example.com/a//b:v1", wantErr: true},
		{in: "registry.example.com/-app@" + digest, wantErr: true},
		{in: "UPPER/case", wantErr: true},
		{in: "app@sha256:short", wantErr: true},
		{in: "app:bad tag", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ref, err := verifier.ParseReference(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseReference(%q) = %s, want an error", tc.in, ref)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ref.String(); got != tc.want {
				t.Errorf("ParseReference(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := verifier.Repository(ref).String(); got != tc.wantRepo {
				t.Errorf("Repository = %q, want %q", got, tc.wantRepo)
			}
		})
	}
}

// FuzzParseReference: never panics, and canonical form is a fixed point.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"nginx", "docker.io/nginx:1", "Ghcr.IO/a/b@" + digest, "a:b@" + digest, "localhost:5000/x", "registry-1.docker.io:443/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := verifier.ParseReference(s)
		if err != nil {
			return
		}
		again, err := verifier.ParseReference(ref.String())
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", ref, s, err)
		}
		if again.String() != ref.String() {
			t.Fatalf("not idempotent: %q → %q → %q", s, ref, again)
		}
		if verifier.Repository(again) != verifier.Repository(ref) {
			t.Fatalf("repository changed: %q → %q", verifier.Repository(ref), verifier.Repository(again))
		}
	})
}

// TestCanonicalIsNotRepeated: a reference ParseReference returned is
// canonical already, so the verifier's canonicalization on every Resolve,
// Verify and cache look-up hands it back without parsing or allocating;
// any other spelling is rebuilt into the same canonical reference.
func TestCanonicalIsNotRepeated(t *testing.T) { // not parallel: AllocsPerRun
	for _, s := range []string{"nginx", "docker.io/nginx:1", "Ghcr.IO/a/b@" + digest, "a:b@" + digest, "localhost:5000/x", "registry-1.docker.io:443/x:v1", "quay.io/team/app:v1"} {
		ref, err := verifier.ParseReference(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := verifier.Canonical(ref); err != nil || got != ref {
			t.Errorf("canonical(%q) = %v, %v; want the reference itself", ref, got, err)
		}
		if n := testing.AllocsPerRun(50, func() { _, _ = verifier.Canonical(ref) }); n != 0 {
			t.Errorf("canonical(%q) allocates %v times, want 0", ref, n)
		}
		raw, err := name.ParseReference(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := verifier.Canonical(raw)
		if err != nil || got.String() != ref.String() {
			t.Errorf("canonical(%q) = %v, %v; want %q", s, got, err, ref)
		}
	}
}
