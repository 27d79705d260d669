package cloudauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

// fakeProvider issues numbered tokens valid for life, for the hosts of
// cloud, one scope per host.
type fakeProvider struct {
	cloud string
	clock *clocktesting.FakeClock
	life  time.Duration
	calls atomic.Int32
	fail  atomic.Bool
	gate  chan struct{} // when set, Fetch waits for it
}

func (p *fakeProvider) Name() string { return p.cloud }

func (p *fakeProvider) Scope(host string) (string, bool) {
	return host, cloudhost.Provider(host) == p.cloud
}

func (p *fakeProvider) Fetch(ctx context.Context, host string) (Token, error) {
	n := p.calls.Add(1)
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return Token{}, ctx.Err()
		}
	}
	if p.fail.Load() {
		return Token{}, errors.New("token service: 503 Service Unavailable")
	}
	return Token{Username: "user", Password: fmt.Sprintf("token-%d", n), Expires: p.clock.Now().Add(p.life)}, nil
}

const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"

// resolveAuth resolves host through k: its credentials, or nil when k
// answers anonymous.
func resolveAuth(t *testing.T, k *Keychain, host string) (*authn.AuthConfig, error) {
	t.Helper()
	reg, err := name.NewRegistry(host)
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.ResolveContext(t.Context(), reg)
	if err != nil || a == authn.Anonymous {
		return nil, err
	}
	cfg, err := authn.Authorization(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, nil
}

// mustResolveAuth is resolveAuth failing the test on an error.
func mustResolveAuth(t *testing.T, k *Keychain, host string) *authn.AuthConfig {
	t.Helper()
	cfg, err := resolveAuth(t, k, host)
	if err != nil {
		t.Fatalf("resolve %s: %v", host, err)
	}
	return cfg
}

func password(t *testing.T, k *Keychain, host string) (string, error) {
	t.Helper()
	cfg, err := resolveAuth(t, k, host)
	if err != nil {
		return "", err
	}
	if cfg == nil {
		return "anonymous", nil
	}
	return cfg.Password, nil
}

func mustPassword(t *testing.T, k *Keychain, host string) string {
	t.Helper()
	p, err := password(t, k, host)
	if err != nil {
		t.Fatalf("resolve %s: %v", host, err)
	}
	return p
}

// ECR tokens last 12 hours: the keychain reuses one until 3 hours are
// left, then exchanges it once.
func TestRefreshBeforeExpiry(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	p := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: 12 * time.Hour}
	k := NewWith([]Provider{p}, Options{Settings: Settings{Clock: fc}})

	if got := mustPassword(t, k, ecrHost); got != "token-1" {
		t.Fatalf("first resolve = %q", got)
	}
	fc.Step(9*time.Hour - time.Second)
	if got := mustPassword(t, k, ecrHost); got != "token-1" || p.calls.Load() != 1 {
		t.Fatalf("before the refresh time: %q after %d exchanges, want token-1 after 1", got, p.calls.Load())
	}
	fc.Step(time.Second)
	if got := mustPassword(t, k, ecrHost); got != "token-2" {
		t.Fatalf("at 9h (3h before expiry): %q, want a refreshed token-2", got)
	}
	if got := mustPassword(t, k, ecrHost); got != "token-2" || p.calls.Load() != 2 {
		t.Fatalf("after the refresh: %q after %d exchanges", got, p.calls.Load())
	}
}

func TestRefreshAt(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		life, refresh time.Duration
	}{
		{12 * time.Hour, 9 * time.Hour},                     // ECR: a quarter left
		{time.Hour, 45 * time.Minute},                       // Google: 15 minutes left
		{3 * time.Hour, 135 * time.Minute},                  // ACR: a quarter left
		{20 * time.Minute, 10 * time.Minute},                // short: half its lifetime
		{0, 0},                                              // expired: now
		{-time.Minute, 0},                                   // expired: now
		{40 * time.Minute, 25 * time.Minute},                // 15 minutes left
		{100 * time.Hour, 75 * time.Hour},                   // a quarter left
		{30 * time.Second, 15 * time.Second},                // half
		{2 * time.Minute, 1 * time.Minute},                  // half
		{60 * time.Minute, 45 * time.Minute},                // 15 minutes
		{61 * time.Minute, 45*time.Minute + 45*time.Second}, // a quarter (15m15s) left
		{120 * time.Minute, 90 * time.Minute},               // a quarter (30m) left
		{24 * time.Hour, 18 * time.Hour},                    // a quarter left
		{45 * time.Minute, 30 * time.Minute},                // 15 minutes
		{29 * time.Minute, 14*time.Minute + 30*time.Second}, // half
	} {
		if got := RefreshAt(now, now.Add(c.life)).Sub(now); got != c.refresh {
			t.Errorf("lifetime %v: refresh after %v, want %v", c.life, got, c.refresh)
		}
	}
}

// Concurrent resolves of one scope exchange once.
func TestConcurrentResolvesExchangeOnce(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	p := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: 12 * time.Hour, gate: make(chan struct{})}
	k := NewWith([]Provider{p}, Options{Settings: Settings{Clock: fc}})
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = password(t, k, ecrHost) })
	}
	for p.calls.Load() == 0 {
		time.Sleep(time.Millisecond) // wait until an exchange has begun
	}
	close(p.gate)
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != "token-1" {
			t.Fatalf("resolve %d: %q, %v", i, got[i], errs[i])
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d exchanges for 8 concurrent resolves, want 1", n)
	}
}

// A failed refresh keeps the valid credential, and is not repeated
// before the failure hold; an expired credential with a failing exchange
// is an error that names the provider, the registry and the setting.
func TestFailedRefresh(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	p := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: 12 * time.Hour}
	k := NewWith([]Provider{p}, Options{Settings: Settings{Clock: fc}})
	mustPassword(t, k, ecrHost)

	p.fail.Store(true)
	fc.Step(10 * time.Hour)
	if got := mustPassword(t, k, ecrHost); got != "token-1" {
		t.Fatalf("refresh failing, credential valid: %q, want token-1", got)
	}
	calls := p.calls.Load()
	fc.Step(DefaultFailureHold - time.Second)
	mustPassword(t, k, ecrHost)
	if p.calls.Load() != calls {
		t.Fatal("a failed exchange was repeated within the failure hold")
	}
	fc.Step(2 * time.Hour)
	_, err := password(t, k, ecrHost)
	if err == nil {
		t.Fatal("expired credential and failing exchange: no error")
	}
	for _, want := range []string{"ecr credentials for " + ecrHost, "503", "registry.cloudCredentials"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if p.calls.Load() != calls+1 {
		t.Fatalf("%d exchanges after the hold, want %d", p.calls.Load(), calls+1)
	}
	// The verifier reads it as a verifier.CredentialError: undecided, in
	// signgate's words, without the cloud's text.
	var ce interface{ CredentialProblem() string }
	if !errors.As(err, &ce) || strings.Contains(ce.CredentialProblem(), "503") || !strings.Contains(ce.CredentialProblem(), "ecr credentials") {
		t.Fatalf("error %v: not a credential problem in signgate's words", err)
	}

	p.fail.Store(false)
	if _, err := password(t, k, ecrHost); err == nil {
		t.Fatal("within the failure hold the failure is not cached")
	}
	fc.Step(DefaultFailureHold)
	if got := mustPassword(t, k, ecrHost); got == "token-1" {
		t.Fatal("after the hold the exchange was not repeated")
	}
}

// Hosts no enabled provider serves are anonymous (the docker keychain
// answers for them in a MultiKeychain); registries narrows a provider.
func TestSelection(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	ecr := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: time.Hour}
	azure := &fakeProvider{cloud: cloudhost.Azure, clock: fc, life: time.Hour}
	k := newKeychain([]provider{
		{Provider: ecr},
		{Provider: azure, registries: []string{"ours.azurecr.io"}},
	}, Options{Settings: Settings{Clock: fc}})
	for host, want := range map[string]string{
		ecrHost:                 cloudhost.ECR,
		"ours.azurecr.io":       cloudhost.Azure,
		"theirs.azurecr.io":     "",
		"europe-docker.pkg.dev": "",
		"docker.io":             "",
		"127.0.0.1:5000":        "",
	} {
		if got := k.Provider(host); got != want {
			t.Errorf("Provider(%q) = %q, want %q", host, got, want)
		}
		got := mustPassword(t, k, host)
		if (got == "anonymous") != (want == "") {
			t.Errorf("%s resolved to %q", host, got)
		}
	}
	if ecr.calls.Load() != 1 || azure.calls.Load() != 1 {
		t.Fatalf("exchanges: ecr %d, azure %d; want 1 each", ecr.calls.Load(), azure.calls.Load())
	}
}

// Scopes come from image references, which tenants write: the cache is
// bounded.
func TestBoundedEntries(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	p := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: time.Hour}
	k := NewWith([]Provider{p}, Options{Settings: Settings{Clock: fc}, MaxEntries: 4})
	for i := range 20 {
		fc.Step(time.Second)
		mustPassword(t, k, fmt.Sprintf("%012d.dkr.ecr.eu-west-1.amazonaws.com", i))
	}
	k.mu.Lock()
	n := len(k.entries)
	k.mu.Unlock()
	if n > 4 {
		t.Fatalf("%d entries cached, bound 4", n)
	}
}

// An exchange is bounded by the keychain's timeout, and a caller that
// gives up does not cancel it for the others.
func TestExchangeTimeout(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	p := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: time.Hour, gate: make(chan struct{})}
	k := NewWith([]Provider{p}, Options{Settings: Settings{Clock: fc}, Timeout: 50 * time.Millisecond})
	_, err := password(t, k, ecrHost)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("hung exchange: %v, want a deadline error", err)
	}

	// A canceled caller returns at once; the exchange it began goes on
	// and serves the next caller.
	p2 := &fakeProvider{cloud: cloudhost.ECR, clock: fc, life: time.Hour, gate: make(chan struct{})}
	k2 := NewWith([]Provider{p2}, Options{Settings: Settings{Clock: fc}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	reg, _ := name.NewRegistry(ecrHost)
	if _, err := k2.ResolveContext(ctx, reg); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: %v", err)
	}
	done := make(chan string)
	go func() { done <- mustPassword(t, k2, ecrHost) }()
	close(p2.gate)
	if got := <-done; got != "token-1" || p2.calls.Load() != 1 {
		t.Fatalf("after a canceled caller: %q after %d exchanges, want token-1 after 1", got, p2.calls.Load())
	}
}

func TestNew(t *testing.T) {
	k, err := New(Options{})
	if k != nil || err != nil {
		t.Fatalf("nothing enabled: %v, %v", k, err)
	}
	if _, err := New(Options{Enabled: []Enabled{{Provider: "oracle"}}}); err == nil || !strings.Contains(err.Error(), `unknown provider "oracle"`) {
		t.Fatalf("unknown provider: %v", err)
	}
	for _, n := range cloudhost.Names {
		if factories[n] != nil {
			continue
		}
		_, err := New(Options{Enabled: []Enabled{{Provider: n}}})
		if err == nil || !strings.Contains(err.Error(), "built without the "+n) {
			t.Fatalf("provider %s left out of the build: %v", n, err)
		}
	}
}
