package main

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/verifier"
)

// A registry refused by one of the verifier's rules that a setting lifts
// (the network guard: --allow-host, registry.allowedHosts; plain HTTP:
// --insecure-registry, registry.insecureRegistries) is a configuration
// problem, not a denial: check and verify say which rule, with the remedy
// that fits how they were configured, and exit 2 (exitUsage).

// checkRemedies are the remedies check names: the configuration's keys
// with --config, its flags without.
func checkRemedies(opts checkOptions) admission.Remedies {
	if opts.ConfigFile != "" {
		return admission.ConfigRemedies
	}
	return admission.FlagRemedies
}

// configRefusal returns the refusal in err (from Resolve, or a
// NotVerifiedError whose reads were refused) when a setting lifts it.
func configRefusal(err error) (*verifier.RefusedError, bool) {
	var (
		r  *verifier.RefusedError
		nv *verifier.NotVerifiedError
	)
	switch {
	case errors.As(err, &r):
	case errors.As(err, &nv) && nv.Refused != nil:
		r = nv.Refused
	default:
		return nil, false
	}
	return r, r.Kind == verifier.RefusalNetworkGuard || r.Kind == verifier.RefusalPlainHTTP
}

// verifyFailure is failure for `signgate verify`, except that a registry
// refused by the network guard or for plain HTTP is a configuration
// problem: exit 2 with the rule and the flag that lifts it.
func verifyFailure(registry string, err error, hint string) (int, error) {
	if r, ok := configRefusal(err); ok {
		return exitUsage, errors.New(admission.FlagRemedies.RefusedProblem(registry, r))
	}
	return failure(err, hint)
}

// refusalWatch is the verifier check runs the gate on: it records the
// registries refused by a rule a setting lifts, so that check can exit 2
// (runCheck) after reporting the objects. The embedded *verifier.Verifier
// still answers ResolveCached, so the gate keeps using its caches.
type refusalWatch struct {
	*verifier.Verifier
	remedies admission.Remedies

	mu       sync.Mutex
	problems []string
}

func (w *refusalWatch) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	d, err := w.Verifier.Resolve(ctx, ref)
	w.note(ref.Context().RegistryStr(), err)
	return d, err
}

func (w *refusalWatch) Verify(ctx context.Context, d name.Digest, set verifier.AuthoritySet) (verifier.Result, error) {
	res, err := w.Verifier.Verify(ctx, d, set)
	w.note(d.Context().RegistryStr(), err)
	return res, err
}

func (w *refusalWatch) Cached(d name.Digest, set verifier.AuthoritySet) (verifier.Result, bool, error) {
	res, ok, err := w.Verifier.Cached(d, set)
	w.note(d.Context().RegistryStr(), err)
	return res, ok, err
}

func (w *refusalWatch) note(registry string, err error) {
	r, ok := configRefusal(err)
	if !ok {
		return
	}
	msg := w.remedies.RefusedProblem(registry, r)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Contains(w.problems, msg) {
		w.problems = append(w.problems, msg)
	}
}

// refusals returns the messages recorded, in the order first seen.
func (w *refusalWatch) refusals() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.problems)
}

// watchedGate is check's gate with the verifier's refusals.
type watchedGate struct {
	*admission.Gate
	watch *refusalWatch
}

func (g watchedGate) refusals() []string { return g.watch.refusals() }

// refusalReporter is a gate that knows the refused registries (watchedGate).
type refusalReporter interface{ refusals() []string }
