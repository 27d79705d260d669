package policy

import (
	"slices"
)

// Summary describes one compiled view of a source's policies, for
// metrics (signgate_policies, the registry label of
// signgate_registry_request_duration_seconds).
type Summary struct {
	ClusterImagePolicies Count
	ImagePolicies        Count
	// TrustRoots: a TrustRoot is invalid when it does not decode, or when
	// a policy uses it and it cannot be resolved (its trusted root is
	// missing or does not parse). A TrustRoot no policy uses is not read,
	// so it counts as ready unless it does not decode.
	TrustRoots Count
	// Hosts are the registry hosts the policies' globs name literally,
	// canonical as internal/imageref.Host gives them ("index.docker.io"
	// for Docker Hub), once each: those of ClusterImagePolicies first,
	// then those only ImagePolicies name, each group sorted. A glob whose
	// host has a wildcard ("*.example.com", "**") names none. Invalid
	// policies' globs count too, as far as they compile. Shared: must not
	// be modified.
	Hosts []string
}

// Count is a number of objects by state.
type Count struct {
	Ready   int // compiled
	Invalid int // rejected by the compiler: their images are denied
}

func (c *Count) add(invalid bool) {
	if invalid {
		c.Invalid++
	} else {
		c.Ready++
	}
}

// summarize describes a compilation: results and t are compile's, st its
// state (which TrustRoots were resolved, and how).
func (c *compiler) summarize(results []compileResult, t *trustSet, st *compileState) Summary {
	var s Summary
	for _, r := range results {
		if r.Object.Kind == KindImagePolicy {
			s.ImagePolicies.add(r.Err != nil)
		} else {
			s.ClusterImagePolicies.add(r.Err != nil)
		}
	}
	for name, o := range c.trustRootObjs {
		r, used := st.trustRoots[name]
		s.TrustRoots.add(o.DecodeErr != nil || used && r.err != nil)
	}
	seen := map[string]bool{}
	s.Hosts = globHosts(s.Hosts, seen, t.cluster)
	var namespaced []*compiledPolicy
	for _, ps := range t.byNamespace {
		namespaced = append(namespaced, ps...)
	}
	s.Hosts = globHosts(s.Hosts, seen, namespaced)
	return s
}

// globHosts appends to hosts, sorted, the literal hosts of ps' globs not
// seen yet.
func globHosts(hosts []string, seen map[string]bool, ps []*compiledPolicy) []string {
	start := len(hosts)
	for _, p := range ps {
		for _, g := range p.globs {
			if h, ok := g.host(); ok && !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	slices.Sort(hosts[start:])
	return hosts
}

// host is the registry host g names, canonical; false when its host
// segment has a wildcard.
func (g Glob) host() (string, bool) {
	if len(g.segs) == 0 || g.segs[0].kind != literal {
		return "", false
	}
	return g.segs[0].text, true
}
