// Package attestation is what an authority can require beyond its
// signature: in-toto attestations of a predicate type, signed by the
// authority, about the image, for which a CEL condition holds (SLSA
// provenance from the right builder, an SBOM, a recent scan without
// critical findings). It compiles and evaluates the conditions; finding,
// verifying and decoding the attestations is the verifier's. It does no
// I/O.
package attestation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
)

// PredicateTypes are cosign's short names for predicate types
// (`cosign attest --type`), accepted wherever a predicate type is.
var PredicateTypes = map[string]string{
	"custom":           "https://cosign.sigstore.dev/attestation/v1",
	"slsaprovenance":   "https://slsa.dev/provenance/v0.2",
	"slsaprovenance02": "https://slsa.dev/provenance/v0.2",
	"slsaprovenance1":  "https://slsa.dev/provenance/v1",
	"spdx":             "https://spdx.dev/Document",
	"spdxjson":         "https://spdx.dev/Document",
	"cyclonedx":        "https://cyclonedx.org/bom",
	"link":             "https://in-toto.io/Link/v1",
	"vuln":             "https://cosign.sigstore.dev/attestation/vuln/v1",
	"openvex":          "https://openvex.dev/ns",
}

// Cost limits of conditions, in CEL cost units (about one per operation,
// more for string and list work, as Kubernetes' own CEL admission counts
// them).
const (
	// PerExpressionCost bounds one evaluation of a condition or message.
	PerExpressionCost = 1_000_000
	// PerReviewCost bounds every evaluation of one verification together
	// (Budget): a hostile set of attestations cannot multiply the first.
	// On these machines a million units is about a second of CPU; the
	// verification's deadline also stops an evaluation (Eval's ctx).
	PerReviewCost = 3 * PerExpressionCost
)

// Requirement is one attestation an authority requires: at least one
// attestation of PredicateType, signed by the authority, whose subject
// names the image, for which Condition is true. Built by Compile;
// immutable and safe to share.
type Requirement struct {
	Name          string // names the requirement in messages
	PredicateType string // the full URI (short names resolved)
	Condition     string // CEL, "" = presence is enough
	Message       string // CEL evaluated when Condition is false, "" = none
	cond, msg     cel.Program
	usesNow       bool
	key           string
}

// env is the one CEL environment: what a condition can read.
var env = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("predicate", cel.DynType),
		cel.Variable("predicateType", cel.StringType),
		cel.Variable("subject", cel.ListType(cel.DynType)),
		cel.Variable("image", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
	)
	if err != nil {
		panic(fmt.Sprintf("attestation: CEL environment: %v", err))
	}
	return e
}()

// Compile checks and compiles a requirement. predicateType is a URI or
// one of PredicateTypes' short names. An expression that does not parse or
// type-check is an error with its position; the condition must be a bool
// (or dyn, checked when evaluated), the message a string (or dyn).
func Compile(name, predicateType, condition, message string) (*Requirement, error) {
	if name == "" {
		return nil, errors.New("attestation without a name")
	}
	pt := predicateType
	if full, ok := PredicateTypes[pt]; ok {
		pt = full
	}
	if pt == "" {
		return nil, fmt.Errorf("attestation %s: no predicateType", name)
	}
	if !strings.Contains(pt, ":") {
		return nil, fmt.Errorf("attestation %s: predicateType %q is neither a URI nor one of cosign's short names (%s)", name, predicateType, shortNames())
	}
	if condition == "" && message != "" {
		return nil, fmt.Errorf("attestation %s: a message needs a condition", name)
	}
	r := &Requirement{Name: name, PredicateType: pt, Condition: condition, Message: message}
	var err error
	if condition != "" {
		if r.cond, err = program(condition, cel.BoolType, &r.usesNow); err != nil {
			return nil, fmt.Errorf("attestation %s: condition: %w", name, err)
		}
	}
	if message != "" {
		if r.msg, err = program(message, cel.StringType, &r.usesNow); err != nil {
			return nil, fmt.Errorf("attestation %s: message: %w", name, err)
		}
	}
	h := sha256.New()
	for _, s := range []string{name, pt, condition, message} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	r.key = hex.EncodeToString(h.Sum(nil))
	return r, nil
}

func shortNames() string {
	return "custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex"
}

// program compiles one expression of the given output type (or dyn) with
// the per-expression cost limit, noting whether it reads now.
func program(expr string, want *cel.Type, usesNow *bool) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if out := ast.OutputType(); !out.IsExactType(want) && !out.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("%q is of type %s, want %s", expr, out, want)
	}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if ref.Name == "now" {
			*usesNow = true
		}
	}
	return env.Program(ast, cel.CostLimit(PerExpressionCost), cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
}

// Key identifies what the requirement accepts (name, predicate type,
// condition and message) for verdict cache keys.
func (r *Requirement) Key() string { return r.key }

// UsesNow reports whether the condition or message reads now: its answer
// may change with time alone, so a verdict holds only for the cache's TTL.
func (r *Requirement) UsesNow() bool { return r.usesNow }

// Input is what a condition sees of one verified attestation.
type Input struct {
	Predicate     any // the statement's predicate, decoded JSON
	PredicateType string
	Subject       []any // the statement's subjects, decoded JSON
	Repository    string
	Digest        string // sha256:<hex>
	Now           time.Time
}

// Budget is the cost left for one verification's evaluations. Not safe
// for concurrent use.
type Budget struct{ left, total uint64 }

// NewBudget returns a budget of cost units: PerReviewCost for a
// verification.
func NewBudget(cost uint64) *Budget { return &Budget{left: cost, total: cost} }

// ErrCost is wrapped by evaluations stopped by a cost limit.
var ErrCost = errors.New("cost limit exceeded")

// Eval evaluates the requirement's condition on in: ok is true when it
// holds (always, without a condition); message is the evaluated message
// when it does not (or "" without one). An error is a runtime error, an
// exhausted cost limit or ctx's end: the attestation does not count.
func (r *Requirement) Eval(ctx context.Context, in Input, b *Budget) (ok bool, message string, err error) {
	if r.cond == nil {
		return true, "", nil
	}
	vars := map[string]any{
		"predicate":     in.Predicate,
		"predicateType": in.PredicateType,
		"subject":       in.Subject,
		"image":         map[string]string{"repository": in.Repository, "digest": in.Digest},
		"now":           in.Now,
	}
	if vars["subject"] == nil {
		vars["subject"] = []any{}
	}
	v, err := eval(ctx, r.cond, vars, b)
	if err != nil {
		return false, "", fmt.Errorf("condition: %w", err)
	}
	holds, isBool := v.(bool)
	if !isBool {
		return false, "", fmt.Errorf("condition: evaluated to %T, want a bool", v)
	}
	if holds {
		return true, "", nil
	}
	if r.msg == nil {
		return false, "", nil
	}
	m, err := eval(ctx, r.msg, vars, b)
	if err != nil {
		return false, "", fmt.Errorf("message: %w", err)
	}
	s, isString := m.(string)
	if !isString {
		return false, "", fmt.Errorf("message: evaluated to %T, want a string", m)
	}
	return false, s, nil
}

// eval runs one program within the budget and charges what it cost.
func eval(ctx context.Context, p cel.Program, vars map[string]any, b *Budget) (any, error) {
	if b != nil && b.left == 0 {
		return nil, fmt.Errorf("%w: the verification's budget of %d is spent", ErrCost, b.total)
	}
	out, details, err := p.ContextEval(ctx, vars)
	if details != nil && b != nil {
		if c := details.ActualCost(); c != nil {
			b.left -= min(*c, b.left)
		}
	}
	if err != nil {
		if strings.Contains(err.Error(), "cost limit exceeded") {
			return nil, fmt.Errorf("%w (%d per expression)", ErrCost, uint64(PerExpressionCost))
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped: %w", context.Cause(ctx))
		}
		return nil, err
	}
	return out.Value(), nil
}
