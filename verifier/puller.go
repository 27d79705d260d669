package verifier

import (
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// maxPullerRepos is how many distinct repositories one remote.Puller serves
// before it is replaced.
const maxPullerRepos = 1000

// pullers hands out the shared remote.Puller. go-containerregistry's Puller
// keeps a reader (ping result and token) for every repository it has
// touched, for its whole life: image strings come from tenants, so a stream
// of pods naming ever new repositories would grow memory without bound.
// After maxPullerRepos distinct repositories the Puller is replaced by a
// new one on the same transport (connections are kept; a repository seen
// again costs one ping and token again). Calls in flight keep the Puller
// they started with. Safe for concurrent use.
type pullers struct {
	build func() (*remote.Puller, error)

	mu    sync.Mutex
	cur   *remote.Puller
	repos map[string]struct{} // repositories cur has served
	gens  int                 // Pullers built so far
}

func newPullers(build func() (*remote.Puller, error)) (*pullers, error) {
	p := &pullers{build: build}
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
	p.cur, p.repos = cur, make(map[string]struct{})
	p.gens++
	return nil
}

// forRepo returns the Puller to use for repo.
func (p *pullers) forRepo(repo name.Repository) *remote.Puller {
	key := repo.Name()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.repos[key]; ok {
		return p.cur
	}
	if len(p.repos) >= maxPullerRepos {
		// Build cannot fail here: the options were checked by the first build.
		if err := p.replace(); err != nil {
			return p.cur
		}
	}
	p.repos[key] = struct{}{}
	return p.cur
}

// stats returns the repositories the current Puller serves and how many
// Pullers have been built.
func (p *pullers) stats() (repos, gens int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.repos), p.gens
}
