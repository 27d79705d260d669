package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/signgate/signgate/internal/registrytest"
)

// TestCheckPoliciesDocExample runs the worked example of docs/policies.md
// (its YAML, as printed there) through check and proves the "What each
// image needs" table. Two in-memory registries play registry.example.com
// and registry.k8s.io; test keys replace the printed ones.
func TestCheckPoliciesDocExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	example := ""
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], "name: corporate\n") {
			example = m[1]
		}
	}
	if example == "" {
		t.Fatal("docs/policies.md: no yaml block with the corporate ClusterImagePolicy")
	}

	corpReg, k8sReg := registrytest.New(t), registrytest.New(t)
	corp, team := registrytest.NewSigner(t), registrytest.NewSigner(t)
	api := corpReg.PushImage(t, "team-a/api", "2.1")
	apiCorpOnly := corpReg.PushImage(t, "team-a/api", "2.1-corp-only")
	base := corpReg.PushImage(t, "shared/base", "1")
	k8sReg.PushImage(t, "pause", "3.10")
	corpReg.Sign(t, corp, api, registrytest.Classic)
	corpReg.Sign(t, team, api, registrytest.Classic)
	corpReg.Sign(t, corp, apiCorpOnly, registrytest.Classic)
	corpReg.Sign(t, corp, base, registrytest.Classic)

	pemBlock := regexp.MustCompile(`(?m)^( +)-----BEGIN PUBLIC KEY-----\n(?:.*\n)*?\s*-----END PUBLIC KEY-----`)
	example = pemBlock.ReplaceAllStringFunc(example, func(block string) string {
		indent := block[:strings.Index(block, "-")]
		return indent + strings.ReplaceAll(strings.TrimSpace(string(team.PublicPEM)), "\n", "\n"+indent)
	})
	example = strings.NewReplacer("registry.example.com", corpReg.Host, "registry.k8s.io", k8sReg.Host).Replace(example)
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: corporate-cosign-pub, namespace: signgate-system}\nstringData:\n  cosign.pub: |\n    " +
		strings.ReplaceAll(strings.TrimSpace(string(corp.PublicPEM)), "\n", "\n    ") + "\n"
	policies := t.TempDir()
	for file, data := range map[string]string{"example.yaml": example, "secret.yaml": secret} {
		if err := os.WriteFile(filepath.Join(policies, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		image     string
		namespace string
		want      decision
	}{
		{corpReg.Host + "/team-a/api:2.1", "team-a", admitted},                           // corporate and team-a-ci
		{corpReg.Host + "/team-a/api:2.1-corp-only", "team-a", denied},                   // team-a-ci missing
		{corpReg.Host + "/team-a/api:2.1-corp-only", "team-b", admitted},                 // team-a-ci lives in team-a only
		{corpReg.Host + "/shared/base:1", "team-a", admitted},                            // corporate
		{k8sReg.Host + "/pause:3.10", "team-b", admitted},                                // static pass
		{"docker.io/library/nginx@sha256:" + strings.Repeat("ab", 32), "team-a", denied}, // unmatched: no registry needed
	}
	for _, tt := range tests {
		name := strings.NewReplacer(corpReg.Host, "registry.example.com", k8sReg.Host, "registry.k8s.io").Replace(tt.image)
		t.Run(name+" in "+tt.namespace, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "pod.yaml")
			if err := os.WriteFile(file, []byte(podYAML("app", tt.image)), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			run(context.Background(), []string{"check", "-f", file, "-n", tt.namespace, "-o", "json", "--policy-dir", policies,
				"--insecure-registry", corpReg.Host + "," + k8sReg.Host, "--allow-host", corpReg.Host + "," + k8sReg.Host}, &out, &errOut)
			var r report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Objects) != 1 {
				t.Fatalf("objects %v, err %v; stderr:\n%s", r.Objects, err, errOut.String())
			}
			if o := r.Objects[0]; o.Decision != tt.want {
				t.Errorf("decision %s %q, want %s", o.Decision, o.Messages, tt.want)
			}
		})
	}
}
