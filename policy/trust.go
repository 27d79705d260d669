package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/signgate/signgate/internal/authority"
	"github.com/signgate/signgate/internal/imageref"
)

// Mode says what happens when a requirement or check is not met.
// The zero value is not a mode; ParseMode maps "" to ModeEnforce.
type Mode string

const (
	// ModeEnforce denies the request.
	ModeEnforce Mode = "enforce"
	// ModeWarn admits the request with a warning.
	ModeWarn Mode = "warn"
	// ModeAudit admits the request with an audit annotation.
	ModeAudit Mode = "audit"
)

// ParseMode parses a mode; "" is ModeEnforce.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeEnforce, nil
	case ModeEnforce, ModeWarn, ModeAudit:
		return m, nil
	}
	return "", fmt.Errorf("parse mode %q: want enforce, warn or audit", s)
}

// Static verdicts of a Requirement.
const (
	StaticPass = "pass" // admit without checking signatures
	StaticFail = "fail" // deny
)

// Requirement is what one applicable policy demands of one image. Every
// Requirement returned for an image must be met (AND).
//
// Exactly one of these holds:
//   - Err != nil: the policy is invalid; deny the image with Err's message.
//     Mode is then always ModeEnforce, whatever the policy asked for: an
//     invalid policy denies (docs/policies.md).
//   - Static != "": a fixed verdict, StaticPass or StaticFail.
//   - otherwise at least Authorities.Threshold() (>= 1) distinct keys of
//     Authorities must verify the image's digest. The set is built and
//     validated once, when the policy is compiled, and shared by every
//     review.
//
// Namespaced marks the requirement of an ImagePolicy. An ImagePolicy only
// adds requirements: it is always enforced, never a static pass, and it
// covers an image for unmatchedImages only when the gate configuration says
// so (Config.Covers).
type Requirement struct {
	Policy      string // "ClusterImagePolicy corp" or "ImagePolicy team-a/ci"
	Mode        Mode
	Static      string
	Authorities authority.Set
	Err         error
	Namespaced  bool // from an ImagePolicy, written by whoever can edit the namespace
}

// Snapshot is one consistent, compiled view of the trust policies; use one
// Snapshot for a whole admission review. Safe for concurrent use.
type Snapshot interface {
	// Namespace returns the labels of a namespace. The map must not be
	// modified. An error means the namespace could not be looked up: deny.
	Namespace(name string) (labels map[string]string, err error)
	// Requirements returns the requirements of every policy that applies
	// to the repository repo (canonical by its type, so not canonicalized
	// again) in namespace (with nsLabels), cluster
	// policies first, each group sorted by name. An empty result means no
	// policy applies: the caller applies unmatchedImages. It never fails:
	// problems come back as Requirements with Err.
	Requirements(namespace string, nsLabels map[string]string, repo imageref.Repo) []Requirement
}

// Source gives Snapshots of trust policies. ClusterSource and FileSource
// implement it.
type Source interface {
	// Snapshot returns the current view. Before the source is ready it
	// returns a view that fails every lookup.
	Snapshot() Snapshot
	// Ready reports whether the first complete view has been compiled.
	Ready() bool
}

// InvalidPolicyError says why a policy could not be compiled.
type InvalidPolicyError struct {
	Policy   string   // "ClusterImagePolicy corp"
	Problems []string // sorted
}

func (e *InvalidPolicyError) Error() string {
	return fmt.Sprintf("%s is invalid: %s", e.Policy, strings.Join(e.Problems, "; "))
}

// ErrNotReady is the error of a source that has not compiled its first view.
var ErrNotReady = errors.New("trust policies not loaded yet, retry")

// compiledPolicy is one policy ready for matching.
type compiledPolicy struct {
	selector labels.Selector // cluster policies; nil for ImagePolicy
	globs    []Glob
	all      bool // the globs are unusable: the policy covers every image in its scope
	req      Requirement
}

func (p *compiledPolicy) matches(nsLabels labels.Set, names []string) bool {
	if p.selector != nil && !p.selector.Matches(nsLabels) {
		return false
	}
	if p.all {
		return true
	}
	for _, g := range p.globs {
		if g.matchNames(names) {
			return true
		}
	}
	return false
}

// trustSet is the compiled form of all policies. Immutable once built.
type trustSet struct {
	cluster     []*compiledPolicy            // sorted by name
	byNamespace map[string][]*compiledPolicy // ImagePolicies, sorted by name
	summary     Summary
}

func (t *trustSet) requirements(namespace string, nsLabels map[string]string, repo imageref.Repo) []Requirement {
	names := strings.Split(repo.String(), "/")
	set := labels.Set(nsLabels)
	var out []Requirement
	for _, p := range t.cluster {
		if p.matches(set, names) {
			out = append(out, p.req)
		}
	}
	for _, p := range t.byNamespace[namespace] {
		if p.matches(set, names) {
			out = append(out, p.req)
		}
	}
	return out
}

// snapshot is the Snapshot of both sources.
type snapshot struct {
	trust     *trustSet
	namespace func(name string) (map[string]string, error)
}

func (s *snapshot) Namespace(name string) (map[string]string, error) { return s.namespace(name) }

func (s *snapshot) Requirements(namespace string, nsLabels map[string]string, repo imageref.Repo) []Requirement {
	return s.trust.requirements(namespace, nsLabels, repo)
}

// notReady is the Snapshot of a source that has not loaded yet: it fails
// closed on every lookup.
type notReady struct{}

func (notReady) Namespace(string) (map[string]string, error) { return nil, ErrNotReady }

func (notReady) Requirements(string, map[string]string, imageref.Repo) []Requirement {
	return []Requirement{{Policy: "trust policies", Mode: ModeEnforce, Err: ErrNotReady}}
}

// sortPolicies orders compiled policies by their Requirement's Policy name.
func sortPolicies(ps []*compiledPolicy) {
	slices.SortFunc(ps, func(a, b *compiledPolicy) int { return strings.Compare(a.req.Policy, b.req.Policy) })
}
