package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signgate/signgate/internal/imageref"
)

// TestNamespacePoliciesOnlyAdd (issue 26): an ImagePolicy, which anyone who
// can edit its namespace can write, only adds requirements. With
// unmatchedImages: deny and no ClusterImagePolicy covering the image, none of
// the ways an ImagePolicy could let the image through works: static pass and
// modes other than enforce make the policy invalid (its images are denied
// with the reason), and an enforced policy with the namespace owner's key
// does not cover the image unless policies.namespacePoliciesCoverImages says
// so.
func TestNamespacePoliciesOnlyAdd(t *testing.T) {
	t.Parallel()
	const cluster = `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: corp}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities: [{name: corp-key, key: {data: {{P256}}}}]
---
`
	const nsPolicy = `apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: mine, namespace: team-a}
spec:
`
	tests := []struct {
		name    string
		spec    string // of ImagePolicy team-a/mine
		repo    string
		want    []req  // Err compared by the substring in wantErr
		wantErr string // the problem the policy is invalid for
		// covers: whether the image counts as covered for unmatchedImages,
		// with namespacePoliciesCoverImages false (default) and true.
		covers, coversOptIn bool
	}{
		{
			name:    "static pass on **",
			spec:    "  images: [{glob: \"**\"}]\n  static: {action: pass}\n",
			repo:    "index.docker.io/library/nginx",
			want:    []req{{Policy: "ImagePolicy team-a/mine", Mode: ModeEnforce}},
			wantErr: "static.action pass: an ImagePolicy cannot admit images without a signature",
			// Opting in does not help: the policy is invalid and denies.
			coversOptIn: true,
		},
		{
			name:        "mode audit on **",
			spec:        "  images: [{glob: \"**\"}]\n  mode: audit\n  authorities: [{name: mine, key: {data: {{P256B}}}}]\n",
			repo:        "index.docker.io/library/nginx",
			want:        []req{{Policy: "ImagePolicy team-a/mine", Mode: ModeEnforce}},
			wantErr:     "mode audit: an ImagePolicy must use mode enforce",
			coversOptIn: true,
		},
		{
			name:        "mode warn on **",
			spec:        "  images: [{glob: \"**\"}]\n  mode: warn\n  static: {action: fail}\n",
			repo:        "index.docker.io/library/nginx",
			want:        []req{{Policy: "ImagePolicy team-a/mine", Mode: ModeEnforce}},
			wantErr:     "mode warn: an ImagePolicy must use mode enforce",
			coversOptIn: true,
		},
		{
			name:        "enforced with the namespace owner's key",
			spec:        "  images: [{glob: \"**\"}]\n  mode: enforce\n  authorities: [{name: mine, key: {data: {{P256B}}}}]\n",
			repo:        "index.docker.io/library/nginx",
			want:        []req{{Policy: "ImagePolicy team-a/mine", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"mine"}}},
			coversOptIn: true,
		},
		{
			name: "second key on top of a cluster policy",
			spec: "  images: [{glob: \"registry.example.com/team-a/**\"}]\n  authorities: [{name: mine, key: {data: {{P256B}}}}]\n",
			repo: "registry.example.com/team-a/app",
			want: []req{
				{Policy: "ClusterImagePolicy corp", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"corp-key"}},
				{Policy: "ImagePolicy team-a/mine", Mode: ModeEnforce, Threshold: 1, Authorities: []string{"mine"}},
			},
			covers: true, coversOptIn: true,
		},
		{
			name: "static fail stays allowed",
			spec: "  images: [{glob: \"quay.io/**\"}]\n  static: {action: fail}\n",
			repo: "quay.io/x",
			want: []req{{Policy: "ImagePolicy team-a/mine", Mode: ModeEnforce, Static: StaticFail}},
			// Not covered, but denied either way.
			coversOptIn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			trust, results := compileYAML(t, cluster+nsPolicy+tt.spec)
			var invalid []string
			for _, r := range results {
				if r.Err != nil {
					invalid = append(invalid, r.Err.Error())
				}
			}
			switch {
			case tt.wantErr == "" && len(invalid) > 0:
				t.Fatalf("invalid policies %q, want none", invalid)
			case tt.wantErr != "" && (len(invalid) != 1 || !strings.Contains(invalid[0], tt.wantErr)):
				t.Fatalf("invalid policies %q, want ImagePolicy team-a/mine invalid for %q", invalid, tt.wantErr)
			}
			reqs := trust.requirements("team-a", nil, imageref.ParseRepo(tt.repo))
			got := summarize(reqs)
			for i := range got {
				if got[i].Err != "" && strings.Contains(got[i].Err, tt.wantErr) {
					got[i].Err = ""
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("requirements mismatch (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" && (len(reqs) != 1 || reqs[0].Err == nil) {
				t.Errorf("requirements %v: want the invalid policy's error, which denies the image", got)
			}
			def, optIn := DefaultConfig(), DefaultConfig()
			optIn.Policies.NamespacePoliciesCoverImages = true
			if got := def.Covers(reqs); got != tt.covers {
				t.Errorf("Covers with the default configuration = %t, want %t", got, tt.covers)
			}
			if got := optIn.Covers(reqs); got != tt.coversOptIn {
				t.Errorf("Covers with namespacePoliciesCoverImages = %t, want %t", got, tt.coversOptIn)
			}
		})
	}
}

// TestClusterPoliciesKeepEveryMode: the restriction is on ImagePolicy only;
// the cluster administrator's policies keep static pass, warn and audit.
func TestClusterPoliciesKeepEveryMode(t *testing.T) {
	t.Parallel()
	trust, results := compileYAML(t, `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: audit}
spec:
  mode: audit
  images: [{glob: "**"}]
  authorities: [{name: k, key: {data: {{P256}}}}]
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: pass}
spec:
  images: [{glob: "**"}]
  static: {action: pass}
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: warn}
spec:
  mode: warn
  images: [{glob: "**"}]
  static: {action: fail}
`)
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("unexpected invalid policy: %v", r.Err)
		}
	}
	want := []req{
		{Policy: "ClusterImagePolicy audit", Mode: ModeAudit, Threshold: 1, Authorities: []string{"k"}},
		{Policy: "ClusterImagePolicy pass", Mode: ModeEnforce, Static: StaticPass},
		{Policy: "ClusterImagePolicy warn", Mode: ModeWarn, Static: StaticFail},
	}
	reqs := trust.requirements("team-a", nil, imageref.ParseRepo("quay.io/x"))
	if diff := cmp.Diff(want, summarize(reqs)); diff != "" {
		t.Errorf("requirements mismatch (-want +got):\n%s", diff)
	}
	if !DefaultConfig().Covers(reqs) {
		t.Error("cluster policies do not cover the image")
	}
}
