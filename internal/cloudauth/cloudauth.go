// Package cloudauth gives the gate registry credentials from its own
// workload identity in a cloud: Amazon ECR (IRSA or EKS Pod Identity),
// Google Artifact Registry and Container Registry (GKE Workload Identity)
// and Azure Container Registry (Microsoft Entra Workload ID), each enabled
// per cloud by registry.cloudCredentials.
//
// A Provider exchanges the identity for a registry credential; the
// Keychain selects the provider by the registry's host (package
// cloudhost), caches each credential until a quarter of its lifetime (at
// least 15 minutes, so that a registry session begun with it outlives
// none) is left, refreshes it once for all callers, and keeps using a
// valid credential while a refresh fails. Providers that are not enabled
// are never constructed: their SDKs are linked but do nothing at run
// time; a build tag (signgate_no_ecr, signgate_no_google,
// signgate_no_azure) leaves one out of the binary.
package cloudauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

// A Token is a registry credential: basic auth for the registry, valid
// until Expires.
type Token struct {
	Username string
	Password string
	// Expires is when the registry stops accepting the credential. Zero:
	// unknown, taken as DefaultLifetime after the exchange.
	Expires time.Time
}

// A Provider exchanges the gate's workload identity in one cloud for
// registry credentials.
type Provider interface {
	// Name is the provider's name in registry.cloudCredentials (one of
	// cloudhost.Names).
	Name() string
	// Scope returns the key of the credential host needs: hosts with one
	// key share one credential (Google's access token serves every host;
	// an ECR token serves its region; an ACR token its
	// registry). ok is false for hosts the provider does not serve.
	Scope(host string) (key string, ok bool)
	// Fetch exchanges the identity for a credential for host. ctx bounds
	// the exchange.
	Fetch(ctx context.Context, host string) (Token, error)
}

// Settings are what a provider is built with.
type Settings struct {
	// Transport carries the exchanges (the cloud's token services and,
	// for Azure, the registry's): the registry proxy when one is
	// configured. Default http.DefaultTransport.
	Transport http.RoundTripper
	// Clock is the time source of expiries. Default the real clock.
	Clock clock.PassiveClock
}

// factories are the providers this binary was built with; each provider's
// file registers itself unless its build tag leaves it out.
var factories = map[string]func(Settings) (Provider, error){}

func register(name string, f func(Settings) (Provider, error)) {
	factories[name] = f
}

// Built returns the providers this binary was built with.
func Built() []string {
	var out []string
	for _, n := range cloudhost.Names {
		if factories[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

// Enabled is one entry of registry.cloudCredentials.
type Enabled struct {
	Provider string
	// Registries, when set, are the only hosts the provider's credential
	// is used for; default every registry host of the provider's cloud.
	Registries []string
}

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultLifetime    = 30 * time.Minute
	DefaultFailureHold = 30 * time.Second
	DefaultMaxEntries  = 256
	minRefreshWindow   = 15 * time.Minute
)

// Options configure a Keychain.
type Options struct {
	Enabled  []Enabled
	Settings Settings
	// Timeout bounds each exchange. Default DefaultTimeout.
	Timeout time.Duration
	// FailureHold is how long a failed exchange is not repeated for the
	// same scope. Default DefaultFailureHold.
	FailureHold time.Duration
	// MaxEntries bounds the cached credentials and failures (scopes are
	// chosen by image references, which tenants write). Default
	// DefaultMaxEntries.
	MaxEntries int
	Logger     *slog.Logger
}

// New builds the keychain of the enabled providers; it is nil when none
// is enabled. A provider this binary was built without is an error.
func New(o Options) (*Keychain, error) {
	if len(o.Enabled) == 0 {
		return nil, nil
	}
	var ps []provider
	for _, e := range o.Enabled {
		f := factories[e.Provider]
		if f == nil {
			if !cloudhost.Known(e.Provider) {
				return nil, fmt.Errorf("registry.cloudCredentials: unknown provider %q; use one of %v", e.Provider, cloudhost.Names)
			}
			return nil, fmt.Errorf("registry.cloudCredentials: this signgate binary was built without the %s provider (build tag signgate_no_%s); use a build with it or remove it", e.Provider, e.Provider)
		}
		p, err := f(o.Settings)
		if err != nil {
			return nil, fmt.Errorf("registry.cloudCredentials: %s: %w", e.Provider, err)
		}
		ps = append(ps, provider{Provider: p, registries: e.Registries})
	}
	return newKeychain(ps, o), nil
}

// NewWith builds a keychain of the given providers (tests and callers
// with their own providers); each serves every host it matches.
func NewWith(ps []Provider, o Options) *Keychain {
	wrapped := make([]provider, len(ps))
	for i, p := range ps {
		wrapped[i] = provider{Provider: p}
	}
	return newKeychain(wrapped, o)
}

type provider struct {
	Provider
	registries []string
}

func (p provider) serves(host string) (string, bool) {
	if len(p.registries) > 0 && !slices.Contains(p.registries, host) {
		return "", false
	}
	return p.Scope(host)
}

// A Keychain resolves registry credentials from the enabled providers:
// anonymous for hosts none serves, so that it can follow the docker
// keychain in an authn.MultiKeychain.
type Keychain struct {
	providers   []provider
	clock       clock.PassiveClock
	timeout     time.Duration
	failureHold time.Duration
	maxEntries  int
	log         *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	flights singleflight.Group
}

type entry struct {
	token     Token
	refreshAt time.Time // when to exchange again
	err       error     // the last exchange failed: until retryAt
	retryAt   time.Time
	used      time.Time
}

func newKeychain(ps []provider, o Options) *Keychain {
	k := &Keychain{
		providers:   ps,
		clock:       o.Settings.Clock,
		timeout:     o.Timeout,
		failureHold: o.FailureHold,
		maxEntries:  o.MaxEntries,
		log:         o.Logger,
		entries:     map[string]*entry{},
	}
	if k.clock == nil {
		k.clock = clock.RealClock{}
	}
	if k.timeout <= 0 {
		k.timeout = DefaultTimeout
	}
	if k.failureHold <= 0 {
		k.failureHold = DefaultFailureHold
	}
	if k.maxEntries <= 0 {
		k.maxEntries = DefaultMaxEntries
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	return k
}

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: the credential of the
// provider serving r's registry, else anonymous.
func (k *Keychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	p, scope, ok := k.provider(host)
	if !ok {
		return authn.Anonymous, nil
	}
	tok, err := k.token(ctx, p, scope, host)
	if err != nil {
		return nil, err
	}
	return authn.FromConfig(authn.AuthConfig{Username: tok.Username, Password: tok.Password}), nil
}

// Provider returns the name of the provider serving host, or "".
func (k *Keychain) Provider(host string) string {
	p, _, ok := k.provider(host)
	if !ok {
		return ""
	}
	return p.Name()
}

func (k *Keychain) provider(host string) (provider, string, bool) {
	for _, p := range k.providers {
		if scope, ok := p.serves(host); ok {
			return p, p.Name() + "\x00" + scope, true
		}
	}
	return provider{}, "", false
}

// token returns the cached credential of scope, exchanging it when none
// is cached, when its refresh time has come, or when the last failure's
// hold is over.
func (k *Keychain) token(ctx context.Context, p provider, scope, host string) (Token, error) {
	now := k.clock.Now()
	k.mu.Lock()
	e := k.entries[scope]
	if e != nil {
		e.used = now
		switch {
		case e.err == nil && now.Before(e.refreshAt):
			tok := e.token
			k.mu.Unlock()
			return tok, nil
		case e.err != nil && now.Before(e.retryAt):
			tok, err := e.token, e.err
			k.mu.Unlock()
			if now.Before(tok.Expires) {
				return tok, nil // refresh failed, the credential still holds
			}
			return Token{}, err
		}
	}
	k.mu.Unlock()

	ch := k.flights.DoChan(scope, func() (any, error) {
		// The exchange serves every caller waiting for it: bounded by the
		// keychain's timeout, not the first caller's context.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeout)
		defer cancel()
		tok, err := p.Fetch(fctx, host)
		k.store(scope, p.Name(), host, tok, err)
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
		return Token{}, fmt.Errorf("%s credentials for %s: %w", p.Name(), host, ctx.Err())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e = k.entries[scope]
	switch {
	case e == nil:
		return Token{}, &ExchangeError{Provider: p.Name(), Host: host, Err: errors.New("evicted from the cache while exchanged")}
	case e.err == nil || k.clock.Now().Before(e.token.Expires):
		return e.token, nil
	default:
		return Token{}, e.err
	}
}

// store records an exchange's outcome.
func (k *Keychain) store(scope, name, host string, tok Token, err error) {
	now := k.clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.entries[scope]
	if e == nil {
		k.evict()
		e = &entry{}
		k.entries[scope] = e
	}
	e.used = now
	if err != nil {
		e.err = &ExchangeError{Provider: name, Host: host, Err: err}
		e.retryAt = now.Add(k.failureHold)
		if now.Before(e.token.Expires) {
			k.log.Warn("cloud credential refresh failed; using the current one until it expires", "provider", name, "registry", host, "expires", e.token.Expires, "err", bounded(err))
		} else {
			k.log.Warn("cloud credential exchange failed; reads of this registry are undecided", "provider", name, "registry", host, "retry_seconds", k.failureHold.Seconds(), "err", bounded(err))
		}
		return
	}
	if tok.Expires.IsZero() {
		tok.Expires = now.Add(DefaultLifetime)
	}
	e.token, e.err = tok, nil
	e.refreshAt = RefreshAt(now, tok.Expires)
	k.log.Debug("cloud credential exchanged", "provider", name, "registry", host, "expires", tok.Expires, "refreshAt", e.refreshAt)
}

// evict drops the least recently used entry when the cache is full.
// k.mu is held.
func (k *Keychain) evict() {
	if len(k.entries) < k.maxEntries {
		return
	}
	var oldest string
	var at time.Time
	for s, e := range k.entries {
		if oldest == "" || e.used.Before(at) {
			oldest, at = s, e.used
		}
	}
	delete(k.entries, oldest)
}

// ExchangeError is a failed exchange of the gate's cloud identity for a
// registry credential. The verifier reads it as a verifier.CredentialError:
// the image is undecided (retried), and the denial names the provider and
// the setting in signgate's words; the cloud's error is logged, not
// shown to the tenant.
type ExchangeError struct {
	Provider string
	Host     string
	Err      error
}

func (e *ExchangeError) Error() string {
	return fmt.Sprintf("%s credentials for %s: %v (registry.cloudCredentials; docs/helm.md, \"Cloud registry credentials\")", e.Provider, e.Host, e.Err)
}

func (e *ExchangeError) Unwrap() error { return e.Err }

// CredentialProblem implements verifier.CredentialError: it follows the
// registry's name in a denial.
func (e *ExchangeError) CredentialProblem() string {
	return "needs " + e.Provider + " credentials from the gate's workload identity (registry.cloudCredentials), which could not be obtained; the gate's log says why"
}

// maxLoggedError bounds a cloud's error text in the log.
const maxLoggedError = 512

// bounded is err's text on one line, at most maxLoggedError bytes.
func bounded(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > maxLoggedError {
		s = s[:maxLoggedError] + "…"
	}
	return s
}

// RefreshAt is when a credential obtained at now and expiring at expires
// is exchanged again: when a quarter of its lifetime is left, but at least
// 15 minutes (registry sessions begun with it last up to 10), and at most
// half its lifetime.
func RefreshAt(now, expires time.Time) time.Time {
	life := expires.Sub(now)
	if life <= 0 {
		return now
	}
	window := max(life/4, min(minRefreshWindow, life/2))
	return expires.Add(-window)
}
