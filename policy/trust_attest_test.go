package policy

import (
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signgate/signgate/internal/attestation"
	"github.com/signgate/signgate/internal/imageref"
)

const attestPolicy = `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: p}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities:
    - name: ci
      key: {data: {{P256}}}
      attestations:
        - name: provenance
          predicateType: https://slsa.dev/provenance/v1
          condition: COND
          message: "'built by ' + predicate.runDetails.builder.id"
        - name: sbom
          predicateType: spdxjson
    - name: other
      key: {data: {{P384}}}
`

const goodCondition = `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`

// withCondition is attestPolicy with the provenance condition cond.
func withCondition(cond string) string {
	return strings.Replace(attestPolicy, "COND", strconv.Quote(cond), 1)
}

func attestRequirements(t *testing.T, doc string) []Requirement {
	t.Helper()
	trust, _ := compileYAML(t, doc)
	return trust.requirements("default", nil, imageref.ParseRepo("registry.example.com/app"))
}

func TestAttestationsCompile(t *testing.T) {
	t.Parallel()
	rs := attestRequirements(t, withCondition(goodCondition))
	if len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("requirements = %+v", summarize(rs))
	}
	if !rs[0].Authorities.Attested() {
		t.Error("Attested() = false, want true")
	}
	got := map[string][]string{}
	for _, a := range rs[0].Authorities.All() {
		got[a.Name] = nil
		for _, r := range a.Attestations {
			got[a.Name] = append(got[a.Name], r.Name+" "+r.PredicateType+" "+r.Condition)
		}
	}
	want := map[string][]string{
		"ci": {
			"provenance https://slsa.dev/provenance/v1 " + goodCondition,
			"sbom https://spdx.dev/Document ", // short name resolved, no condition
		},
		"other": nil,
	}
	if len(got) != len(want) {
		t.Fatalf("authorities = %v, want %v", got, want)
	}
	for name, w := range want {
		if strings.Join(got[name], "|") != strings.Join(w, "|") {
			t.Errorf("authority %s attestations = %q, want %q", name, got[name], w)
		}
	}
}

func TestAttestationsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		attestation string
		want        []string // substrings of the policy's error
	}{
		{
			name:        "condition does not parse",
			attestation: `{name: provenance, predicateType: slsaprovenance1, condition: "predicate.x =="}`,
			want:        []string{`authority "ci": attestations[0] (provenance): condition: ERROR: <input>:1:`, "predicate.x =="},
		},
		{
			name:        "condition undeclared variable",
			attestation: `{name: provenance, predicateType: slsaprovenance1, condition: "builder == 1"}`,
			want:        []string{`authority "ci": attestations[0] (provenance): condition: ERROR: <input>:1:1: undeclared reference to 'builder' (in container '') in "builder == 1"`},
		},
		{
			name:        "condition on several lines",
			attestation: `{name: provenance, predicateType: slsaprovenance1, condition: "true &&\n  nope"}`,
			want:        []string{`condition: ERROR: <input>:2:3: undeclared reference to 'nope' (in container '') in "  nope"`},
		},
		{
			name:        "condition not a bool",
			attestation: `{name: provenance, predicateType: slsaprovenance1, condition: "'yes'"}`,
			want:        []string{`authority "ci": attestations[0] (provenance): condition: "'yes'" is of type string, want bool`},
		},
		{
			name:        "message does not parse",
			attestation: `{name: provenance, predicateType: slsaprovenance1, condition: "true", message: "'a' +"}`,
			want:        []string{`authority "ci": attestations[0] (provenance): message: ERROR: <input>:1:`},
		},
		{
			name:        "message without condition",
			attestation: `{name: provenance, predicateType: slsaprovenance1, message: "'a'"}`,
			want:        []string{`authority "ci": attestations[0] (provenance): a message needs a condition`},
		},
		{
			name:        "unknown short predicate type",
			attestation: `{name: provenance, predicateType: slsa}`,
			want:        []string{`authority "ci": attestations[0] (provenance): predicateType "slsa" is neither a URI nor one of cosign's short names`},
		},
		{
			name:        "no predicate type",
			attestation: `{name: provenance}`,
			want:        []string{`authority "ci": attestations[0] (provenance): no predicateType`},
		},
		{
			name:        "no name",
			attestation: `{predicateType: spdxjson}`,
			want:        []string{`authority "ci": attestations[0]: name is required`},
		},
		{
			name:        "duplicate name",
			attestation: `{name: sbom, predicateType: spdxjson}, {name: sbom, predicateType: cyclonedx}`,
			want:        []string{`authority "ci": attestations[1] (sbom): duplicate name "sbom"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: p}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities:
    - name: ci
      key: {data: {{P256}}}
      attestations: [` + tt.attestation + `]
`
			rs := attestRequirements(t, doc)
			if len(rs) != 1 || rs[0].Err == nil {
				t.Fatalf("requirements = %+v, want one invalid policy", summarize(rs))
			}
			msg := rs[0].Err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not on one line", msg)
			}
			if !strings.HasPrefix(msg, "ClusterImagePolicy p is invalid: ") {
				t.Errorf("error %q does not name the policy", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

// TestAttestationsFingerprint: the set's fingerprint (verdict cache keys)
// covers the attestations, so a changed condition is not served a verdict
// cached under the old one.
func TestAttestationsFingerprint(t *testing.T) {
	t.Parallel()
	fp := func(cond string) string {
		t.Helper()
		rs := attestRequirements(t, withCondition(cond))
		if len(rs) != 1 || rs[0].Err != nil {
			t.Fatalf("requirements = %+v", summarize(rs))
		}
		return rs[0].Authorities.Fingerprint()
	}
	a := fp(goodCondition)
	if b := fp(goodCondition); a != b {
		t.Errorf("fingerprint differs between two compilations of one policy: %s, %s", a, b)
	}
	if c := fp(`predicate.runDetails.builder.id.startsWith("https://github.com/evil/")`); a == c {
		t.Error("fingerprint unchanged after the condition changed")
	}
	// Without any attestations the fingerprint differs again.
	var plain string
	{
		rs := attestRequirements(t, `apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: p}
spec:
  images: [{glob: "registry.example.com/**"}]
  authorities:
    - name: ci
      key: {data: {{P256}}}
    - name: other
      key: {data: {{P384}}}
`)
		if len(rs) != 1 || rs[0].Err != nil {
			t.Fatalf("requirements = %+v", summarize(rs))
		}
		plain = rs[0].Authorities.Fingerprint()
	}
	if plain == a {
		t.Error("fingerprint of a policy without attestations equals one with them")
	}
}

// TestAttestationsDocExample compiles the attestations example of
// docs/policies.md and evaluates its conditions on sample predicates.
func TestAttestationsDocExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	example := ""
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], "name: attested\n") {
			example = m[1]
		}
	}
	if example == "" {
		t.Fatal("docs/policies.md: no yaml block with the attested ClusterImagePolicy")
	}
	example = strings.Replace(example, "secretRef: {name: ci-cosign-pub, key: cosign.pub}", "data: {{P256}}", 1)
	rs := attestRequirements(t, example)
	if len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("requirements = %+v", summarize(rs))
	}
	reqs := map[string]*attestation.Requirement{}
	for _, a := range rs[0].Authorities.All() {
		for _, r := range a.Attestations {
			reqs[r.Name] = r
		}
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	decode := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	scan := func(finished string, severities ...string) any {
		var vulns []string
		for _, s := range severities {
			vulns = append(vulns, `{"VulnerabilityID": "CVE-1", "Severity": "`+s+`"}`)
		}
		return decode(`{"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": {"Results": [{"Target": "app"}, {"Target": "os", "Vulnerabilities": [` +
			strings.Join(vulns, ",") + `]}]}}, "metadata": {"scanStartedOn": "` + finished + `", "scanFinishedOn": "` + finished + `"}}`)
	}
	tests := []struct {
		req       string
		predicate any
		want      bool
		message   string
	}{
		{"provenance", decode(`{"runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"}}}`), true, ""},
		{"provenance", decode(`{"runDetails": {"builder": {"id": "https://github.com/evil/x"}}}`), false, "built by https://github.com/evil/x"},
		{"sbom", decode(`{"spdxVersion": "SPDX-2.3"}`), true, ""},
		{"scan", scan("2026-12-06T10:00:00Z", "LOW", "HIGH"), true, ""},
		{"scan", decode(`{"scanner": {"result": {}}, "metadata": {"scanFinishedOn": "2026-12-06T10:00:00Z"}}`), true, ""},
		{"scan", scan("2026-12-06T10:00:00Z", "LOW", "CRITICAL"), false, "scan of 2026-12-06T10:00:00Z is older than 7 days or has critical findings"},
		{"scan", scan("2026-11-29T10:00:00Z", "LOW"), false, "scan of 2026-11-29T10:00:00Z is older than 7 days or has critical findings"},
	}
	for i, tt := range tests {
		r := reqs[tt.req]
		if r == nil {
			t.Fatalf("no attestation %q in the example (have %v)", tt.req, reqs)
		}
		ok, msg, err := r.Eval(t.Context(), attestation.Input{Predicate: tt.predicate, PredicateType: r.PredicateType, Now: now}, attestation.NewBudget(attestation.PerReviewCost))
		if err != nil || ok != tt.want || msg != tt.message {
			t.Errorf("%d: %s: Eval = %v, %q, %v; want %v, %q", i, tt.req, ok, msg, err, tt.want, tt.message)
		}
	}
	if !reqs["scan"].UsesNow() || reqs["provenance"].UsesNow() {
		t.Errorf("UsesNow: scan %v, provenance %v; want true, false", reqs["scan"].UsesNow(), reqs["provenance"].UsesNow())
	}
}
