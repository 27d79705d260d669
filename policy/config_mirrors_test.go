package policy

import (
	"slices"
	"strings"
	"testing"
)

// TestRegistryMirrors: registry.mirrors is kept as written when valid;
// each invalid entry is reported naming its key (and index), saying what
// is wrong and what to write instead.
func TestRegistryMirrors(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nregistry:\n  mirrors:\n"
	tests := []struct {
		name    string
		mirrors string
		wantErr []string // every one must appear; none: valid
	}{
		{"prefix and port", `    docker.io: ["mirror.corp.example/dockerhub"]
    ghcr.io: ["harbor.corp.example/ghcr-proxy", "backup-mirror.corp.example:5000"]
`, nil},
		{"same host with a prefix", "    registry.corp.example: [registry.corp.example/cache]\n", nil},
		{"empty list", "    docker.io: []\n", []string{`registry.mirrors."docker.io": is empty; list at least one mirror`}},
		{"bad key", "    \"https://docker.io\": [mirror.corp.example]\n", []string{`registry.mirrors."https://docker.io": the key must be a registry host`}},
		{"bad mirror host", "    docker.io: [\"mirror_corp:x/dockerhub\"]\n", []string{`registry.mirrors."docker.io"[0]: must be a mirror host[:port][/path prefix]`}},
		{"scheme", "    docker.io: [\"https://mirror.corp.example\"]\n", []string{`registry.mirrors."docker.io"[0]: must be a mirror host[:port][/path prefix]`, "without scheme"}},
		{"bad prefix", "    docker.io: [\"mirror.corp.example/Docker//Hub\"]\n", []string{`registry.mirrors."docker.io"[0]: must be a mirror host[:port][/path prefix]`}},
		{"trailing slash", "    docker.io: [\"mirror.corp.example/\"]\n", []string{`registry.mirrors."docker.io"[0]: must be a mirror`}},
		{"itself", "    docker.io: [index.docker.io]\n", []string{`registry.mirrors."docker.io"[0]: "index.docker.io" is the registry itself, which is always tried after its mirrors; remove it`}},
		{"twice", "    ghcr.io: [m.corp.example, M.corp.example]\n", []string{`registry.mirrors."ghcr.io"[1]: "M.corp.example" is listed twice`}},
		{"one registry, two keys", "    docker.io: [a.corp.example]\n    index.docker.io: [b.corp.example]\n", []string{`registry.mirrors."index.docker.io": names the same registry as "docker.io" (index.docker.io)`}},
		{"loop", "    a.corp.example: [b.corp.example]\n    b.corp.example: [a.corp.example]\n", []string{
			`registry.mirrors."a.corp.example"[0]: "b.corp.example" has mirrors of its own (registry.mirrors."b.corp.example"); mirrors are not chained`,
			`registry.mirrors."b.corp.example"[0]: "a.corp.example" has mirrors of its own`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(head + tt.mirrors))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(c.Registry.Mirrors) == 0 {
					t.Fatal("mirrors not kept")
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
	c, err := ParseConfig([]byte(head + "    ghcr.io: [m1.corp.example, m2.corp.example/p]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Registry.Mirrors["ghcr.io"]; !slices.Equal(got, []string{"m1.corp.example", "m2.corp.example/p"}) {
		t.Errorf("order not kept: %v", got)
	}
}
