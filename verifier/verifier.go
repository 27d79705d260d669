package verifier

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/semaphore"
)

// Verifier resolves tags and verifies digests against registries, with a
// verdict cache and a tag cache. Safe for concurrent use; create one per
// process and share it, since its transport, registry tokens and caches
// are what make repeated calls cheap.
//
// Each cache runs one background goroutine (from hashicorp/golang-lru's
// expirable LRU) for the lifetime of the process.
type Verifier struct {
	opts     Options
	base     http.RoundTripper // under every registry transport: connections are shared
	pullers  *pullers          // with the gate's own credentials (Options.Keychain)
	scopes   *scopedPullers    // with callers' credentials (Credential)
	insecure map[string]bool
	verdicts *verdictCache
	tags     *tagCache
	layouts  *layoutHints
	attested *layoutHints // the same, for where attestations were found
	flights  flightGroup  // verdicts
	resolves flightGroup  // tag resolutions
	// running bounds the verifications doing registry work at once
	// (Options.MaxConcurrentVerifications); waiting counts those waiting
	// for a slot.
	running *semaphore.Weighted
	waiting atomic.Int64
	budget  *byteBudget // Options.MaxBytesInFlight
}

// New returns a Verifier; opts are checked once here.
func New(opts Options) (*Verifier, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	base := o.Transport
	if base == nil {
		base = withRegistryCAs(guardedTransport(o.BlockedNetworks, o.AllowedHosts, o.Proxy), o.RegistryCAs)
	}
	v := &Verifier{
		opts:     o,
		base:     base,
		scopes:   newScopedPullers(),
		insecure: hostSet(o.InsecureRegistries),
		verdicts: newVerdictCache(o),
		tags:     newTagCache(o),
		layouts:  newLayoutHints(),
		attested: newLayoutHints(),
		running:  semaphore.NewWeighted(int64(o.MaxConcurrentVerifications)),
		budget:   newByteBudget(o.MaxBytesInFlight),
	}
	p, err := newPullers(v.pullerBuilder(o.Keychain))
	if err != nil {
		return nil, err
	}
	v.pullers = p
	v.flights = flightGroup{op: "verify", obs: o.Observer, reset: p.renew}
	v.resolves = flightGroup{op: "resolve", obs: o.Observer, reset: p.renew}
	return v, nil
}

// remoteOptions point go-containerregistry calls about repo at the
// puller ctx's credentials use (the shared one by default).
func (v *Verifier) remoteOptions(ctx context.Context, repo name.Repository) []remote.Option {
	return []remote.Option{remote.Reuse(v.pullersFor(ctx).forRepo(repo)), remote.WithContext(ctx)}
}

// nameOptions mark registries listed as insecure, so the registry client
// may use plain HTTP for them (and only them).
func (v *Verifier) nameOptions(ref name.Reference) []name.Option {
	if v.insecure[strings.ToLower(ref.Context().RegistryStr())] {
		return []name.Option{name.Insecure}
	}
	return nil
}

// remoteDigest is d as the registry client should see it.
func (v *Verifier) remoteDigest(d name.Digest) (name.Digest, error) {
	return name.NewDigest(d.String(), v.nameOptions(d)...)
}
