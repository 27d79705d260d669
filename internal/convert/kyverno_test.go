package convert

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// TestImageGlobs: Kyverno's wildcards cross "/", signgate's "*" does not;
// tags and digests are dropped; what is not exact is wider and noted.
func TestImageGlobs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		note bool
	}{
		{"*", []string{"**"}, false},
		{"ghcr.io/org/*", []string{"ghcr.io/org/**"}, false},
		{"ghcr.io/org/app:*", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org/app:v1", []string{"ghcr.io/org/app"}, true},
		{"ghcr.io/org/app@sha256:abc", []string{"ghcr.io/org/app"}, true},
		{"ghcr.io/chipzoller/zulu*", []string{"ghcr.io/chipzoller/zulu*", "ghcr.io/chipzoller/zulu*/**"}, false},
		{"ghcr.io/a/x*y", []string{"ghcr.io/a/x*y", "ghcr.io/a/x*/**/*y"}, false},
		{"ghcr.io/*/app", []string{"ghcr.io/**/app"}, false},
		{"*.example.com/app", []string{"**"}, true},
		{"ghcr.io/a*/b*", []string{"**"}, true},
		{"ghcr.io/ap?", []string{"ghcr.io/ap*", "ghcr.io/ap*/**"}, true},
	} {
		got, note := imageGlobs(c.in)
		if !reflect.DeepEqual(got, c.want) || (note != "") != c.note {
			t.Errorf("imageGlobs(%q) = %q, %q; want %q, note %v", c.in, got, note, c.want, c.note)
		}
	}
}

// TestConditionsCEL: simple JMESPath conditions become CEL over
// predicate; anything else is an error (the policy is then not written).
func TestConditionsCEL(t *testing.T) {
	cond := func(key, op string, v any) map[string]any {
		return map[string]any{"key": key, "operator": op, "value": v}
	}
	ok := []struct {
		in   []any
		want string
	}{
		{nil, ""},
		{[]any{map[string]any{"all": []any{cond("{{ builder.id }}", "Equals", "https://b")}}}, `predicate.builder.id == "https://b"`},
		{[]any{map[string]any{"all": []any{cond("{{ a }}", "NotEquals", true), cond("{{ b }}", "GreaterThan", float64(3))}}}, `predicate.a != true && double(predicate.b) > 3.0`},
		{[]any{map[string]any{"any": []any{cond(`{{ m."x-y" }}`, "In", []any{"a", "b"}), cond("{{ n }}", "LessThanOrEquals", 0.5)}}}, `predicate.m["x-y"] in ["a", "b"] || double(predicate.n) <= 0.5`},
		{[]any{map[string]any{"all": []any{cond("{{ a }}", "Equals", "x")}}, map[string]any{"any": []any{cond("{{ b }}", "Equals", "y"), cond("{{ c }}", "Equals", "z")}}}, `predicate.a == "x" && (predicate.b == "y" || predicate.c == "z")`},
	}
	for _, c := range ok {
		got, err := conditionsCEL(c.in)
		if err != nil || got != c.want {
			t.Errorf("conditionsCEL(%v) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []map[string]any{
		cond("{{ regex_match('x', '{{ a }}') }}", "Equals", true),
		cond("{{ a }}", "Equals", "foo*"),
		cond("{{ a }}", "DurationGreaterThan", "1h"),
		cond("{{ a }}", "GreaterThan", "1Gi"),
		cond("literal", "Equals", "x"),
	} {
		if got, err := conditionsCEL([]any{map[string]any{"all": []any{bad}}}); err == nil {
			t.Errorf("conditionsCEL(%v) = %q, want an error", bad, got)
		}
	}
}

// TestCombineSets: one set keeps its count; sets that require all their
// entries need all; anything else needs all and is not exact.
func TestCombineSets(t *testing.T) {
	auths := func(n int) []v1alpha1.Authority { return make([]v1alpha1.Authority, n) }
	for _, c := range []struct {
		sets      []attestorSet
		threshold int
		exact     bool
	}{
		{[]attestorSet{{auths(3), 2}}, 2, true},
		{[]attestorSet{{auths(3), 3}}, 3, true},
		{[]attestorSet{{auths(1), 1}, {auths(2), 2}}, 3, true},
		{[]attestorSet{{auths(2), 1}, {auths(1), 1}}, 3, false},
	} {
		got, th, exact := combineSets(c.sets)
		if th != c.threshold || exact != c.exact || len(got) != 3 && len(c.sets) > 1 {
			t.Errorf("combineSets(%v) = %d, %v; want %d, %v", c.sets, th, exact, c.threshold, c.exact)
		}
	}
}

// TestWholeMatch: cosign's regular expressions match anywhere, signgate's
// the whole value.
func TestWholeMatch(t *testing.T) {
	// The rewritten expression, matched against the whole value as
	// signgate does, agrees with the original matched anywhere.
	values := []string{"", "a", "ba", "ab", "bab", "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", "x|y"}
	for _, re := range []string{`^a$`, `a`, `^a`, `a$`, `^a|b$`, `github\.com/acme/`, `^https://github\.com/acme/.*@refs/heads/main$`, `x\|y`} {
		orig := regexp.MustCompile(re)
		whole := regexp.MustCompile(`^(?:` + wholeMatch(re) + `)$`)
		for _, v := range values {
			if orig.MatchString(v) != whole.MatchString(v) {
				t.Errorf("wholeMatch(%q) = %q: %q matches %v, the original %v", re, wholeMatch(re), v, whole.MatchString(v), orig.MatchString(v))
			}
		}
	}
	if got := wholeMatch(`^a$`); got != `^a$` {
		t.Errorf("an anchored expression is rewritten: %q", got)
	}
	if !strings.HasPrefix(dnsName("Team-A Images"), "team-a-images") {
		t.Error(dnsName("Team-A Images"))
	}
}
