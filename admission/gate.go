package admission

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// Resolver resolves a tag to the digest it points at (digests are returned
// as they are). *verifier.Verifier implements it.
type Resolver interface {
	Resolve(ctx context.Context, ref name.Reference) (name.Digest, error)
}

// ImageVerifier verifies a digest against an authority set; errors are
// *verifier.NotVerifiedError (definite) or *verifier.UndecidedError
// (transient). *verifier.Verifier implements it.
type ImageVerifier interface {
	Verify(ctx context.Context, d name.Digest, set verifier.AuthoritySet) (verifier.Result, error)
}

// Verifier is what the Gate needs from the registry side.
type Verifier interface {
	Resolver
	ImageVerifier
}

// cachedVerifier is a Verifier that can also answer from its caches,
// without registry I/O (*verifier.Verifier): ok is false when only Resolve
// or Verify can answer. The Gate asks it first, on the request's
// goroutine, and starts workers only for the rest. A Verifier without it
// gets every image through Resolve and Verify.
type cachedVerifier interface {
	ResolveCached(ref name.Reference) (d name.Digest, ok bool)
	Cached(d name.Digest, set verifier.AuthoritySet) (res verifier.Result, ok bool, err error)
}

// PolicySource gives a consistent view of trust policies and namespaces for
// one review. policy.FileSource and policy.ClusterSource implement it.
type PolicySource interface {
	Snapshot() policy.Snapshot
}

// ConfigSource gives the current gate configuration. *policy.ConfigWatcher
// implements it; StaticConfig wraps a fixed one.
type ConfigSource interface {
	Current() *policy.Config
}

// StaticConfig is a ConfigSource that never changes (tests, signgate check).
type StaticConfig struct{ Config *policy.Config }

// Current returns the configuration, or the defaults when it is nil.
func (s StaticConfig) Current() *policy.Config {
	if s.Config == nil {
		return policy.DefaultConfig()
	}
	return s.Config
}

// The implementations the interfaces above are written for.
var (
	_ Verifier       = (*verifier.Verifier)(nil)
	_ cachedVerifier = (*verifier.Verifier)(nil)
	_ PolicySource   = (*policy.FileSource)(nil)
	_ PolicySource   = (*policy.ClusterSource)(nil)
	_ ConfigSource   = (*policy.ConfigWatcher)(nil)
)

// DefaultConcurrency is how many registry operations one review runs at a
// time when Options.Concurrency is zero.
const DefaultConcurrency = 8

// Options configure a Gate. Policies is required, and Verifier unless
// Offline.
type Options struct {
	// Verifier resolves tags (mutate; workload templates in validate) and
	// verifies digests (validate). Required unless Offline.
	Verifier Verifier
	// Offline makes a gate that contacts no registry (signgate check
	// --offline): nothing is resolved or verified. Everything decided
	// without a registry is decided as online — references, invalid
	// policies, static pass and fail, unmatchedImages, Pod Security,
	// hardening — and, for pod images written with a tag, with the
	// policies of their repository as if the mutating webhook had pinned
	// them. What would need the registry is reported, never decided: a
	// warning per image the mutating webhook would pin
	// (CodeOfflineNotPinned) and per signature requirement that applies
	// (CodeOfflineNotVerified). An offline gate never admits because of a
	// signature, and never denies for want of one.
	Offline bool
	// Policies gives namespaces and trust policies. Required.
	Policies PolicySource
	// Config gives the gate configuration. Default: policy.DefaultConfig().
	Config ConfigSource
	// PodSecurity evaluates Pod Security levels. Default: the upstream
	// evaluator with every check (policy.NewPodSecurity()).
	PodSecurity *policy.PodSecurity
	// Namespace is the gate's own namespace; it is exempt like the
	// configuration's exemptNamespaces so the gate can always restart.
	// Default: none.
	Namespace string
	// Concurrency bounds the registry operations of one review.
	// Default DefaultConcurrency.
	Concurrency int
	// Remedies says what messages tell users to do about a registry that
	// one of the verifier's rules refused (the network guard, plain HTTP).
	// Default ConfigRemedies: the gate configuration's keys, as for serve.
	Remedies Remedies
	// Credentials gives each review its namespace's registry credentials
	// (pull secrets), read ahead of the gate's own; the Verifier must then
	// read with a caller's credentials (*verifier.Verifier does). Default
	// none: every review reads with the gate's own credentials.
	Credentials CredentialSource
}

// Remedies chooses the remedy messages name for a refused registry.
type Remedies int

const (
	// ConfigRemedies name the gate configuration: "list it in
	// registry.allowedHosts if it is trusted", "list it in
	// registry.insecureRegistries if that is intended". For serve, and
	// for check with a configuration file.
	ConfigRemedies Remedies = iota
	// FlagRemedies name the command line flags of signgate check and
	// verify: "pass --allow-host HOST", "pass --insecure-registry HOST if
	// that is intended".
	FlagRemedies
)

// Gate makes the admission decisions of both webhooks. It does no HTTP: the
// Handler, the CLI and tests call Mutate and Validate with an
// AdmissionRequest. Safe for concurrent use.
type Gate struct {
	verifier     Verifier       // nil when offline
	offline      bool           // Options.Offline
	cached       cachedVerifier // nil: the verifier has no cache to ask
	policies     PolicySource
	config       ConfigSource
	podSecurity  *policy.PodSecurity
	namespace    string
	concurrency  int
	remedies     Remedies
	refs         *refCache
	credentials  CredentialSource   // nil: the gate's own credentials only
	credVerifier credentialVerifier // the verifier, when credentials is set
}

// NewGate checks opts once and returns a Gate.
func NewGate(opts Options) (*Gate, error) {
	if opts.Verifier == nil && !opts.Offline {
		return nil, errors.New("new gate: Options.Verifier is required unless Options.Offline")
	}
	if opts.Verifier != nil && opts.Offline {
		return nil, errors.New("new gate: an Offline gate contacts no registry; leave Options.Verifier nil")
	}
	if opts.Policies == nil {
		return nil, errors.New("new gate: Options.Policies is required")
	}
	g := &Gate{
		verifier:    opts.Verifier,
		offline:     opts.Offline,
		policies:    opts.Policies,
		config:      opts.Config,
		podSecurity: opts.PodSecurity,
		namespace:   opts.Namespace,
		concurrency: opts.Concurrency,
		remedies:    opts.Remedies,
		refs:        newRefCache(),
	}
	g.cached, _ = opts.Verifier.(cachedVerifier)
	if opts.Credentials != nil {
		cv, ok := opts.Verifier.(credentialVerifier)
		if !ok {
			return nil, errors.New("new gate: Options.Credentials needs a Verifier that reads with a caller's credentials (*verifier.Verifier)")
		}
		g.credentials, g.credVerifier = opts.Credentials, cv
	}
	if g.config == nil {
		g.config = StaticConfig{}
	}
	if g.podSecurity == nil {
		ps, err := policy.NewPodSecurity()
		if err != nil {
			return nil, err
		}
		g.podSecurity = ps
	}
	if g.concurrency <= 0 {
		g.concurrency = DefaultConcurrency
	}
	return g, nil
}

// verdict is a decision plus what the boundary logs about it.
type verdict struct {
	resp     *admissionv1.AdmissionResponse
	images   []string
	findings []Finding // only when asked for (structured: ValidateFindings, MutateFindings, DryRun, Handler)
}

// Mutate answers the mutating webhook: a JSON patch pinning every image
// that has no digest, or none. It admits (resolution failures become
// warnings, the validating webhook denies what stays unpinned). The
// response's UID is left for the caller to set.
func (g *Gate) Mutate(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	return g.mutate(ctx, req).resp
}

// Validate answers the validating webhook: allowed, denied (Result.Code
// 403) or undecided (503, "retry"). ctx's deadline bounds all registry
// work; what is unfinished by then is undecided. The response's UID is left
// for the caller to set.
func (g *Gate) Validate(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	return g.validate(ctx, req).resp
}

// exempt reports whether namespace is never evaluated.
func (g *Gate) exempt(cfg *policy.Config, namespace string) bool {
	return namespace != "" && cfg.Exempt(namespace, g.namespace)
}

// evaluated reports whether op is one the gate decides on: CREATE and
// UPDATE, the only operations its webhooks are registered for.
func evaluated(op admissionv1.Operation) bool {
	return op == admissionv1.Create || op == admissionv1.Update
}

// outsideProtocol is the answer to a review whose operation is not CREATE
// or UPDATE: missing, lower case, unknown, or one the webhooks are not
// registered for (DELETE, CONNECT). It is a denial, never an allow: such a
// review did not come from an API server configured as the chart does.
//
// It returns the line of the denial.
func outsideProtocol(op admissionv1.Operation) string {
	got := "the review names no operation"
	if op != "" {
		got = fmt.Sprintf("operation %.64q is not reviewed", op)
	}
	return got + ": signgate reviews CREATE and UPDATE only (upper case); register its webhooks for CREATE and UPDATE, as the chart does"
}

func requestKind(req *admissionv1.AdmissionRequest) groupKind {
	return groupKind{group: req.Kind.Group, kind: req.Kind.Kind}
}
