package policy

import (
	"slices"
	"strconv"

	"github.com/signgate/signgate/internal/imageref"
)

// validateMirrors checks registry.mirrors: each key a registry host[:port]
// as in an image reference (docker.io and index.docker.io are one
// registry), each list non-empty, each mirror host[:port][/path prefix],
// not the registry itself, not listed twice and without mirrors of its
// own (mirrors are not chained).
func (r *RegistryConfig) validateMirrors(errs *problems) {
	keys := make([]string, 0, len(r.Mirrors))
	for k := range r.Mirrors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	written := make(map[string]string, len(keys)) // canonical host → key as written
	for _, k := range keys {
		p := path{"registry", "mirrors", strconv.Quote(k)}
		if err := imageref.CheckHost(k); err != nil {
			errs.add(p, "the key must be a registry host or host:port as in an image reference, such as docker.io or registry.local:5000: %v", err)
			continue
		}
		reg := imageref.Host(k)
		if prev, ok := written[reg]; ok {
			errs.add(p, "names the same registry as %q (%s); list its mirrors under one key", prev, reg)
			continue
		}
		written[reg] = k
		if len(r.Mirrors[k]) == 0 {
			errs.add(p, "is empty; list at least one mirror, such as mirror.corp.example/dockerhub, or remove the key")
		}
	}
	for _, k := range keys {
		reg := imageref.Host(k)
		if written[reg] != k {
			continue
		}
		var seen []string
		for i, m := range r.Mirrors[k] {
			p := path{"registry", "mirrors", strconv.Quote(k), i}
			host, prefix, err := imageref.ParseMirror(m)
			switch {
			case err != nil:
				errs.add(p, "must be a mirror host[:port][/path prefix], such as mirror.corp.example/dockerhub: %v", err)
				continue
			case host == reg && prefix == "":
				errs.add(p, "%q is the registry itself, which is always tried after its mirrors; remove it", m)
				continue
			case slices.Contains(seen, host+"/"+prefix):
				errs.add(p, "%q is listed twice; list it once", m)
				continue
			}
			seen = append(seen, host+"/"+prefix)
			if to, ok := written[host]; ok && host != reg {
				errs.add(p, "%q has mirrors of its own (registry.mirrors.%q); mirrors are not chained, so list the mirrors to try for %q under %q directly", m, to, k, k)
			}
		}
	}
}
