package policy

import (
	"strings"
	"testing"
)

// TestCloudCredentials: registry.cloudCredentials is kept when valid;
// each invalid entry is reported at its index, saying what to write.
func TestCloudCredentials(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nregistry:\n  cloudCredentials:\n"
	tests := []struct {
		name    string
		body    string
		wantErr []string // every one must appear; none: valid
	}{
		{"all three", "  - provider: ecr\n  - provider: google\n    registries: [europe-docker.pkg.dev, gcr.io]\n  - provider: azure\n    registries: [ours.azurecr.io]\n", nil},
		{"unknown", "  - provider: oracle\n", []string{`registry.cloudCredentials[0].provider: must be one of ecr, google, azure (got "oracle")`}},
		{"missing", "  - registries: [gcr.io]\n", []string{`registry.cloudCredentials[0].provider: must be one of ecr, google, azure (got "")`}},
		{"twice", "  - provider: ecr\n  - provider: ecr\n", []string{`registry.cloudCredentials[1].provider: ecr is listed twice`}},
		{"other cloud's host", "  - provider: azure\n    registries: [gcr.io]\n", []string{`registry.cloudCredentials[0].registries[0]: must be a registry host of azure, without scheme, port or path, such as myregistry.azurecr.io (got "gcr.io")`}},
		{"scheme", "  - provider: google\n    registries: [\"https://gcr.io\"]\n", []string{`registry.cloudCredentials[0].registries[0]: must be a registry host of google,`}},
		{"port", "  - provider: ecr\n    registries: [\"123456789012.dkr.ecr.eu-west-1.amazonaws.com:443\"]\n", []string{`registry.cloudCredentials[0].registries[0]: must be a registry host of ecr,`}},
		{"host twice", "  - provider: google\n    registries: [gcr.io, GCR.io]\n", []string{`registry.cloudCredentials[0].registries[1]: "GCR.io" is listed twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(head + tt.body))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(c.Registry.CloudCredentials) != 3 || c.Registry.CloudCredentials[2].Registries[0] != "ours.azurecr.io" {
					t.Fatalf("not kept: %+v", c.Registry.CloudCredentials)
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
}
