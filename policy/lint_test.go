package policy

import (
	"strings"
	"testing"
)

// TestLintFile: each problem is found with the compiler's own message, at
// the object's line (an unknown field at its own line); valid objects and
// other kinds give none; what lives outside the file is not read.
func TestLintFile(t *testing.T) {
	t.Parallel()
	key := "\n" + indent(strings.TrimSpace(testKeys()["P256"]), "          ")
	doc := `# team policies
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: good}
spec:
  images: [{glob: "registry.example/**"}]
  authorities:
  - name: ci
    key:
      data: |` + key + `
  - name: from-secret
    key: {secretRef: {name: cosign, key: cosign.pub}}
  - name: release
    keyless:
      trustRoot: not-in-this-file
      identities: [{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: '^https://github\.com/acme/.*$'}]
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: signgate.dev/v1alpha1
kind: ImagePolicy
metadata: {name: typo, namespace: team-a}
spec:
  images: [{glob: "registry.example/**"}]
  authorities:
  - name: ci
    key:
      dataa: x
---
apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: bad}
spec:
  images: [{glob: "registry.example/[**"}]
  threshold: 3
  authorities:
  - name: ci
    key: {data: "not a key"}
    attestations:
    - {name: provenance, predicateType: slsaprovenance1, condition: "predicate.builder.id ==="}
  - name: release
    keyless:
      trustRoot: corp
      identities: [{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "(release"}]
      extensions: {githubWorkflowRepo: acme/app}
---
apiVersion: signgate.dev/v1alpha1
kind: TrustRoot
metadata: {name: broken}
spec:
  trustedRoot: {inline: "{not json"}
`
	got := LintFile("policies.yaml", []byte(doc))
	var lines []string
	for _, p := range got {
		lines = append(lines, p.String())
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`policies.yaml:34: ImagePolicy team-a/typo: decode: `,
		`unknown field "dataa"`,
		`policies.yaml:36: ClusterImagePolicy bad: `,
		`threshold 3: want between 1 and the number of authorities (2)`,
		`authority "ci": attestations[0] (provenance): condition: ERROR: <input>:1:`,
		`authority "release": keyless.identities[0]: subjectRegExp "(release": missing closing )`,
		`policies.yaml:53: TrustRoot broken: parse trusted root: `,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("lint output does not contain %q:\n%s", want, all)
		}
	}
	for _, p := range got {
		if strings.Contains(p.What, "good") || strings.Contains(p.What, "Namespace") {
			t.Errorf("problem in a valid object or another kind: %s", p)
		}
	}
	for _, tc := range []struct{ spec, want string }{
		{`{"tuf":{"mirror":"https://tuf.example","root":{"configMapRef":{"name":"r","key":"root.json"}}}}`, ""},
		{`{"trustedRoot":{"secretRef":{"name":"r","key":"trusted_root.json"}}}`, ""},
		{`{"trustedRoot":{"inline":"{}","secretRef":{"name":"r","key":"k"}}}`, "exactly one of inline, configMapRef or secretRef is required, 2 are set"},
		{`{"tuf":{"mirror":"https://tuf.example","root":{"configMapRef":{"name":"r","key":"k"}},"refreshInterval":"10ms"}}`, "want at least 1s"},
	} {
		err := ValidateObject([]byte(`{"apiVersion":"signgate.dev/v1alpha1","kind":"TrustRoot","metadata":{"name":"t"},"spec":` + tc.spec + `}`))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidateObject(TrustRoot %s) = %v, want %q", tc.spec, err, tc.want)
		}
	}
	if err := ValidateObject([]byte(`{"apiVersion":"signgate.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"x"},"spec":{"images":[{"glob":"a/**"}],"static":{"action":"pass"}}}`)); err != nil {
		t.Errorf("ValidateObject(valid) = %v", err)
	}
	if err := ValidateObject([]byte(`{"apiVersion":"signgate.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"x"},"spec":{"images":[{"glob":"a/**"}],"static":{"action":"maybe"}}}`)); err == nil || !strings.Contains(err.Error(), `static.action "maybe": want pass or fail`) {
		t.Errorf("ValidateObject(bad action) = %v", err)
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
