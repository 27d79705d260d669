package verifier

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPullersReplaced(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	p, err := newPullers(func() (*remote.Puller, error) { return remote.NewPuller() })
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return now }
	p.born = now
	repo := func(i int) name.Repository {
		r, err := name.NewRepository(fmt.Sprintf("registry.example.com/team%d/app", i))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	first := p.forRepo(repo(0))
	if p.forRepo(repo(0)) != first {
		t.Fatal("the same repository got another Puller")
	}
	for i := 1; i < maxPullerRepos; i++ {
		if p.forRepo(repo(i)) != first {
			t.Fatalf("repository %d of %d got a new Puller", i+1, maxPullerRepos)
		}
	}
	second := p.forRepo(repo(maxPullerRepos))
	if second == first {
		t.Fatalf("repository %d got the same Puller, want a new one", maxPullerRepos+1)
	}
	if repos, gens := p.stats(); repos != 1 || gens != 2 {
		t.Errorf("stats = %d repositories, %d Pullers; want 1, 2", repos, gens)
	}

	// Age: a known repository gets a new Puller once the current one is
	// older than maxPullerAge (rotated credentials are asked for again).
	now = now.Add(maxPullerAge)
	if p.forRepo(repo(maxPullerRepos)) != second {
		t.Fatal("replaced at exactly maxPullerAge, want after it")
	}
	now = now.Add(time.Second)
	if p.forRepo(repo(maxPullerRepos)) == second {
		t.Fatal("a Puller older than maxPullerAge was still handed out")
	}
}
