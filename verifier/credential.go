package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Credential is a keychain one call reads registries with ahead of the
// gate's own (Options.Keychain): a namespace's pull secrets. For a
// registry it has credentials for, they are used, and what they let the
// call learn (a private tag's digest, a verdict) is cached under those
// credentials' identity (the credentials themselves, hashed: equal
// credentials share, whoever holds them); no other caller sees it. For a
// registry it has nothing for, the gate's own credentials are used and
// the caches are the shared ones.
type Credential struct {
	Keychain authn.Keychain
	// Name says whose credentials they are, for messages: e.g.
	// `imagePullSecrets "regcred" of namespace team-a`.
	Name string
}

// maxScopes bounds the registry clients kept for distinct credentials
// (each with its connections' pings and tokens); the least recently used
// is dropped, and rebuilt if its credentials come again.
const maxScopes = 256

// access is how one call reads one registry: with the shared pullers and
// caches (scope "", the gate's own credentials), or with a credential's.
type access struct {
	pullers *pullers
	scope   string // "" for the gate's own credentials; else the credentials' identity
	name    string // Credential.Name when scoped
}

type accessKey struct{}

// withAccess makes ctx's registry reads use a.
func withAccess(ctx context.Context, a access) context.Context {
	if a.scope == "" {
		return ctx
	}
	return context.WithValue(ctx, accessKey{}, a)
}

// pullersFor is the pullers ctx's reads use: a credential's, or the
// shared ones.
func (v *Verifier) pullersFor(ctx context.Context) *pullers {
	if a, ok := ctx.Value(accessKey{}).(access); ok {
		return a.pullers
	}
	return v.pullers
}

// access resolves cred for repo (a keychain may hold credentials for a
// host or for a path under it, as docker configs do): the shared access
// when cred is nil or gives repo no credentials (anonymous), else the
// scoped one, built once per distinct credentials and host.
func (v *Verifier) access(ctx context.Context, cred *Credential, repo name.Repository) (access, error) {
	reg := repo.Registry
	shared := access{pullers: v.pullers}
	if cred == nil || cred.Keychain == nil {
		return shared, nil
	}
	auth, err := authn.Resolve(ctx, cred.Keychain, repo)
	if err != nil {
		return access{}, fmt.Errorf("credentials %s for %s: %w", cred.Name, reg.RegistryStr(), err)
	}
	if auth == authn.Anonymous {
		return shared, nil
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return access{}, fmt.Errorf("credentials %s for %s: %w", cred.Name, reg.RegistryStr(), err)
	}
	if cfg == nil || *cfg == (authn.AuthConfig{}) {
		return shared, nil
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return access{}, fmt.Errorf("credentials %s for %s: %w", cred.Name, reg.RegistryStr(), err)
	}
	sum := sha256.Sum256(append([]byte(strings.ToLower(reg.RegistryStr())+"\n"), b...))
	scope := hex.EncodeToString(sum[:16])
	p, err := v.scopes.get(scope, func() (*pullers, error) {
		return newPullers(v.pullerBuilder(staticKeychain{host: reg.RegistryStr(), auth: authn.FromConfig(*cfg)}))
	})
	if err != nil {
		return access{}, err
	}
	return access{pullers: p, scope: scope, name: cred.Name}, nil
}

// staticKeychain gives auth to host only.
type staticKeychain struct {
	host string
	auth authn.Authenticator
}

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if strings.EqualFold(r.RegistryStr(), k.host) {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}

// scopedPullers are the pullers of distinct credentials, at most
// maxScopes. Safe for concurrent use.
type scopedPullers struct{ lru *lru.Cache[string, *pullers] }

func newScopedPullers() *scopedPullers {
	c, _ := lru.New[string, *pullers](maxScopes) // cannot fail: size > 0
	return &scopedPullers{lru: c}
}

func (s *scopedPullers) get(scope string, build func() (*pullers, error)) (*pullers, error) {
	if p, ok := s.lru.Get(scope); ok {
		return p, nil
	}
	p, err := build()
	if err != nil {
		return nil, err
	}
	if prev, ok, _ := s.lru.PeekOrAdd(scope, p); ok {
		return prev, nil // another call built it first
	}
	return p, nil
}

// scoped is key within a's scope: cache and flight keys of scoped calls
// never meet the shared ones or another credential's.
func scoped(key string, a access) string {
	if a.scope == "" {
		return key
	}
	return key + "\x00" + a.scope
}
