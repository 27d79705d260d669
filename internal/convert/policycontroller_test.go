package convert

import (
	"reflect"
	"strings"
	"testing"
)

// TestTranslateGlob: policy-controller globs (regular expressions over the
// reference with its tag) in signgate's repository globs.
func TestTranslateGlob(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  []string
		exact bool
	}{
		{"*", []string{"index.docker.io/library/*"}, true},
		{"*/*", []string{"index.docker.io/*/*"}, true},
		{"**", []string{"**"}, true},
		{"ghcr.io/**", []string{"ghcr.io/**"}, true},
		{"ghcr.io/*/*", []string{"ghcr.io/*/*"}, true},
		{"registry.local:5000/policy-controller/demo*", []string{"registry.local:5000/policy-controller/demo*"}, true},
		// A trailing "**" inside a segment crosses "/".
		{"ghcr.io/foo**", []string{"ghcr.io/foo*", "ghcr.io/foo*/**"}, true},
		// Wider: every tag and digest of the repository.
		{"ghcr.io/foo/bar", []string{"ghcr.io/foo/bar"}, false},
		{"ghcr.io/foo/bar:**", []string{"ghcr.io/foo/bar"}, false},
		// Not expressible.
		{"ghcr.io/foo/bar:v1", nil, false},
		{"ghcr.io/foo@sha256:abc", nil, false},
		{"**demo**", nil, false},
		{"image*", nil, false},
		{"*.example.com/**", nil, false},
		{"ghcr.io/a**b/c", nil, false},
	} {
		got := translateGlob(c.in)
		if !reflect.DeepEqual(got.globs, c.want) || (got.note == "") != c.exact {
			t.Errorf("translateGlob(%q) = %q, note %q; want %q, exact %v", c.in, got.globs, got.note, c.want, c.exact)
		}
	}
}

const pcKey = `
    key:
      data: |
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI
        FNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==
        -----END PUBLIC KEY-----`

// TestPCNeverMorePermissive: what cannot be expressed is left out in the
// direction that denies, and a policy that would admit more is not written.
func TestPCNeverMorePermissive(t *testing.T) {
	head := "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"ghcr.io/**\"}]\n"
	cue := "\n    attestations:\n    - name: a\n      predicateType: spdxjson\n      policy: {type: cue, data: 'predicateType: \"x\"'}\n"
	for _, c := range []struct {
		name, in    string
		objects     int
		authorities int
		field       string // a problem's field
	}{
		{"cue-attested authority only", head + "  authorities:\n  - name: a" + pcKey + cue, 0, 0, "spec.authorities[0].attestations[0].policy"},
		{"cue-attested authority dropped", head + "  authorities:\n  - name: a" + pcKey + cue + "  - name: b\n    keyless: {identities: [{issuer: i, subject: s}]}\n", 1, 1, "spec.authorities[0].attestations[0].policy"},
		{"top-level policy", head + "  authorities:\n  - name: a" + pcKey + "\n  policy: {type: cue, data: x}\n", 0, 0, "spec.policy"},
		{"kms only", head + "  authorities:\n  - key: {kms: 'gcpkms://x'}\n", 0, 0, "spec.authorities[0].key.kms"},
		{"static pass with tag glob", "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"ghcr.io/a/b\"}]\n  authorities: [{static: {action: pass}}]\n", 0, 0, "spec.images[0].glob"},
		{"match narrows", head + "  match: [{resource: deployments}]\n  authorities:\n  - name: a" + pcKey + "\n", 1, 1, "spec.match"},
		{"unknown version", "apiVersion: policy.sigstore.dev/v2\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec: {}\n", 0, 0, "apiVersion"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Convert("in.yaml", []byte(c.in), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Objects) != c.objects {
				t.Fatalf("objects = %d, want %d; problems %v", len(r.Objects), c.objects, r.Problems)
			}
			if c.objects > 0 {
				var b strings.Builder
				if err := WriteYAML(&b, r.Objects); err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(b.String(), "\n    name: "); n != c.authorities {
					t.Errorf("authorities = %d, want %d:\n%s", n, c.authorities, b.String())
				}
			}
			found := false
			for _, p := range r.Problems {
				found = found || p.Field == c.field
			}
			if !found {
				t.Errorf("no problem at %s: %v", c.field, r.Problems)
			}
		})
	}
}
