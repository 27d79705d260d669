package admission

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signgate/signgate/verifier"
)

// countingVerifier counts the calls that reach Resolve and Verify, which
// the gate makes only on its workers (runBounded); ResolveCached and
// Cached are the real verifier's.
type countingVerifier struct {
	*verifier.Verifier
	calls atomic.Int64
}

func (c *countingVerifier) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	c.calls.Add(1)
	return c.Verifier.Resolve(ctx, ref)
}

func (c *countingVerifier) Verify(ctx context.Context, d name.Digest, set verifier.AuthoritySet) (verifier.Result, error) {
	c.calls.Add(1)
	return c.Verifier.Verify(ctx, d, set)
}

// uncachedVerifier hides Cached: every image goes through Verify.
type uncachedVerifier struct{ Verifier }

// TestReviewsCachedVerdicts: once a pod's verdicts (and a template's or
// /mutate's tags) are cached, a review calls neither Resolve nor Verify
// (so runBounded gets no task and starts no goroutine) and answers exactly
// as the first review did, and as a gate whose verifier cannot answer
// from its caches.
func TestReviewsCachedVerdicts(t *testing.T) {
	reviews := []string{
		"mutate-pod-tags",
		"mutate-pod-pinned",
		"validate-deployment-signed-tag",
		"validate-deployment-unsigned",
		"validate-pod-signed",
		"validate-pod-bundle-signed",
		"validate-pod-unsigned",
		"validate-pod-wrong-key",
		"validate-pod-every-container-kind",
		"validate-pod-warn-mode",
		"validate-pod-audit-mode",
		"validate-pod-invalid-policy",
	}
	e := newEnv(t, configDefault)
	counting := &countingVerifier{Verifier: e.verifier}
	if _, ok := Verifier(counting).(cachedVerifier); !ok {
		t.Fatal("the counting verifier lost Cached")
	}
	gate := func(v Verifier) *Gate {
		g, err := NewGate(Options{Verifier: v, Policies: e.gate.policies, Config: e.gate.config, Namespace: "signgate-system"})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	cached, uncached := gate(counting), gate(uncachedVerifier{e.verifier})
	if uncached.cached != nil {
		t.Fatal("a verifier without Cached is asked for cached verdicts")
	}
	for _, name := range reviews {
		t.Run(name, func(t *testing.T) {
			body := e.review(t, name)
			w := WebhookValidate
			if strings.HasPrefix(name, "mutate-") {
				w = WebhookMutate
			}
			e.gate = cached
			checkGolden(t, e, name, e.post(t, w, body, "?timeout=10s")) // may resolve and verify
			before := counting.calls.Load()
			checkGolden(t, e, name, e.post(t, w, body, "?timeout=10s"))
			if n := counting.calls.Load() - before; n != 0 {
				t.Errorf("a review whose tags and verdicts are cached called Resolve or Verify %d times", n)
			}
			e.gate = uncached
			checkGolden(t, e, name, e.post(t, w, body, "?timeout=10s"))
		})
	}
}
