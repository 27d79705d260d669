package verifier

import (
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A remote.Puller is replaced after it has served maxPullerRepos distinct
// repositories or lived maxPullerAge.
const (
	maxPullerRepos = 1000
	maxPullerAge   = 10 * time.Minute
)

// pullers hands out the shared remote.Puller. go-containerregistry's Puller
// keeps a reader (ping result and token) for every repository it has
// touched, for its whole life: image strings come from tenants, so a stream
// of pods naming ever new repositories would grow memory without bound.
// After maxPullerRepos distinct repositories the Puller is replaced by a
// new one on the same transport (connections are kept; a repository seen
// again costs one ping and token again). It is also replaced after
// maxPullerAge, so that rotated registry credentials (a Secret updated in
// place) are picked up: a Puller asks the keychain once per repository.
// Calls in flight keep the Puller they started with. Safe for concurrent
// use.
type pullers struct {
	build func() (*remote.Puller, error)
	now   func() time.Time

	mu    sync.Mutex
	cur   *remote.Puller
	repos map[string]struct{} // repositories cur has served
	born  time.Time           // when cur was built
	gens  int                 // Pullers built so far
}

func newPullers(build func() (*remote.Puller, error)) (*pullers, error) {
	p := &pullers{build: build, now: time.Now}
	if err := p.replace(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pullers) replace() error {
	cur, err := p.build()
	if err != nil {
		return err
	}
	p.cur, p.repos, p.born = cur, make(map[string]struct{}), p.now()
	p.gens++
	return nil
}

// forRepo returns the Puller to use for repo.
func (p *pullers) forRepo(repo name.Repository) *remote.Puller {
	key := repo.Name()
	p.mu.Lock()
	defer p.mu.Unlock()
	stale := p.now().Sub(p.born) > maxPullerAge
	if _, ok := p.repos[key]; ok && !stale {
		return p.cur
	}
	if stale || len(p.repos) >= maxPullerRepos {
		// Build cannot fail here: the options were checked by the first build.
		if err := p.replace(); err != nil {
			return p.cur
		}
	}
	p.repos[key] = struct{}{}
	return p.cur
}

// minRenewAge keeps renew from replacing Pullers more than every 10s when
// many requests are refused at once (or a registry refuses on purpose).
const minRenewAge = 10 * time.Second

// renew replaces the current Puller after a registry refused access, so
// that the next call asks the keychain again (a Puller keeps the
// credentials it found first for each repository). At most every
// minRenewAge.
func (p *pullers) renew() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now().Sub(p.born) < minRenewAge {
		return
	}
	if err := p.replace(); err != nil {
		return // cannot fail: the options were checked by the first build
	}
}

// stats returns the repositories the current Puller serves and how many
// Pullers have been built.
func (p *pullers) stats() (repos, gens int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.repos), p.gens
}
