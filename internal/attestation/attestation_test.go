package attestation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func provenance(builder string) Input {
	return Input{
		Predicate:     map[string]any{"runDetails": map[string]any{"builder": map[string]any{"id": builder}}},
		PredicateType: "https://slsa.dev/provenance/v1",
		Subject:       []any{map[string]any{"digest": map[string]any{"sha256": "abc"}}},
		Repository:    "registry.example/acme/app",
		Digest:        "sha256:abc",
		Now:           time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC),
	}
}

func TestCompile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, predicateType, condition, message string
		wantType                                string
		wantErr                                 string
	}{
		{"provenance", "slsaprovenance1", `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`, `'built by ' + predicate.runDetails.builder.id`, "https://slsa.dev/provenance/v1", ""},
		{"sbom", "https://spdx.dev/Document", "", "", "https://spdx.dev/Document", ""},
		{"short name", "cyclonedx", "true", "", "https://cyclonedx.org/bom", ""},
		{"syntax error with its position", "vuln", `predicate.scanner.result.summary.CRITICAL ==`, "", "", "condition: ERROR: <input>:1:45: Syntax error"},
		{"not a bool", "vuln", `predicate.scanner.uri + "x"`, "", "", "condition: \"predicate.scanner.uri + \\\"x\\\"\" is of type"},
		{"unknown variable", "vuln", `attestation.x == 1`, "", "", "undeclared reference to 'attestation'"},
		{"message not a string", "vuln", `false`, `1 + 1`, "", "message: \"1 + 1\" is of type int, want string"},
		{"message without condition", "vuln", "", `'x'`, "", "a message needs a condition"},
		{"unknown short name", "sbom", "", "", "", `predicateType "sbom" is neither a URI nor one of cosign's short names`},
		{"no predicate type", "", "", "", "", "no predicateType"},
	}
	for _, tt := range tests {
		r, err := Compile(tt.name, tt.predicateType, tt.condition, tt.message)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if r.PredicateType != tt.wantType {
			t.Errorf("%s: predicate type %q, want %q", tt.name, r.PredicateType, tt.wantType)
		}
	}
}

func TestEval(t *testing.T) {
	t.Parallel()
	r, err := Compile("provenance", "slsaprovenance1", `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`, `'built by ' + predicate.runDetails.builder.id`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg, err := r.Eval(t.Context(), provenance("https://github.com/acme/.github/workflows/release.yml"), NewBudget(PerReviewCost)); !ok || msg != "" || err != nil {
		t.Errorf("right builder: %v %q %v", ok, msg, err)
	}
	if ok, msg, err := r.Eval(t.Context(), provenance("https://github.com/evil/x"), NewBudget(PerReviewCost)); ok || msg != "built by https://github.com/evil/x" || err != nil {
		t.Errorf("wrong builder: %v %q %v", ok, msg, err)
	}
	// A predicate without the field: a runtime error, never a pass.
	in := provenance("")
	in.Predicate = map[string]any{"buildDefinition": map[string]any{}}
	if ok, _, err := r.Eval(t.Context(), in, NewBudget(PerReviewCost)); ok || err == nil || !strings.Contains(err.Error(), "no such key: runDetails") {
		t.Errorf("missing field: %v %v", ok, err)
	}
	presence, err := Compile("sbom", "spdxjson", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := presence.Eval(t.Context(), Input{}, NewBudget(PerReviewCost)); !ok || err != nil {
		t.Errorf("presence: %v %v", ok, err)
	}
}

// TestVariables: image, subject, predicateType and now are readable.
func TestVariables(t *testing.T) {
	t.Parallel()
	for _, cond := range []string{
		`image.repository == "registry.example/acme/app" && image.digest == "sha256:abc"`,
		`subject.exists(s, s.digest.sha256 == image.digest.substring(7))`,
		`predicateType == "https://slsa.dev/provenance/v1"`,
		`now - timestamp("2026-12-01T00:00:00Z") < duration("168h")`,
	} {
		r, err := Compile("a", "slsaprovenance1", cond, "")
		if err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		if ok, _, err := r.Eval(t.Context(), provenance("x"), NewBudget(PerReviewCost)); !ok || err != nil {
			t.Errorf("%s: %v %v", cond, ok, err)
		}
	}
	withNow, _ := Compile("a", "vuln", `now > timestamp("2026-01-01T00:00:00Z")`, "")
	without, _ := Compile("a", "vuln", `true`, `'no time here'`)
	if !withNow.UsesNow() || without.UsesNow() {
		t.Errorf("UsesNow: %v %v", withNow.UsesNow(), without.UsesNow())
	}
}

// TestCost: an expression over a hostile predicate stops at the
// per-expression limit; many evaluations stop at the budget.
func TestCost(t *testing.T) {
	t.Parallel()
	items := make([]any, 1500)
	for i := range items {
		items[i] = float64(i)
	}
	quadratic, err := Compile("scan", "vuln", `predicate.items.all(x, predicate.items.all(y, x >= 0 && y >= 0))`, "")
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Predicate: map[string]any{"items": items}}
	if ok, _, err := quadratic.Eval(t.Context(), in, NewBudget(PerReviewCost)); ok || !errors.Is(err, ErrCost) {
		t.Errorf("quadratic: %v %v, want a cost error", ok, err)
	}
	linear, err := Compile("scan", "vuln", `predicate.items.all(x, x >= 0)`, "")
	if err != nil {
		t.Fatal(err)
	}
	b := NewBudget(50_000) // a few evaluations' worth
	var last error
	for range 10_000 {
		if _, _, last = linear.Eval(t.Context(), in, b); last != nil {
			break
		}
	}
	if !errors.Is(last, ErrCost) || !strings.Contains(last.Error(), "budget") {
		t.Errorf("budget: %v, want it spent", last)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := linear.Eval(ctx, in, NewBudget(PerReviewCost)); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("cancelled: %v, want stopped", err)
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	a, _ := Compile("p", "slsaprovenance1", "true", "")
	b, _ := Compile("p", "https://slsa.dev/provenance/v1", "true", "")
	c, _ := Compile("p", "slsaprovenance1", "false", "")
	if a.Key() != b.Key() {
		t.Error("a short name and its URI give different keys")
	}
	if a.Key() == c.Key() {
		t.Error("another condition gives the same key")
	}
}
