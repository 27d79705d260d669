package policy

import (
	"slices"
	"strings"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

// validateCloudCredentials checks registry.cloudCredentials: each
// provider known and listed once, each of its registries a host of its
// cloud, listed once.
func (r *RegistryConfig) validateCloudCredentials(errs *problems) {
	var seen []string
	for i, c := range r.CloudCredentials {
		p := path{"registry", "cloudCredentials", i, "provider"}
		switch {
		case !cloudhost.Known(c.Provider):
			errs.add(p, "must be one of %s (got %q)", strings.Join(cloudhost.Names, ", "), c.Provider)
			continue
		case slices.Contains(seen, c.Provider):
			errs.add(p, "%s is listed twice; list it once, with all its registries", c.Provider)
			continue
		}
		seen = append(seen, c.Provider)
		var hosts []string
		for j, h := range c.Registries {
			p := path{"registry", "cloudCredentials", i, "registries", j}
			switch {
			case cloudhost.Provider(h) != c.Provider:
				errs.add(p, "must be a registry host of %s, without scheme, port or path, such as %s (got %q)", c.Provider, cloudhost.Examples[c.Provider], h)
			case slices.Contains(hosts, strings.ToLower(h)):
				errs.add(p, "%q is listed twice; list it once", h)
			default:
				hosts = append(hosts, strings.ToLower(h))
			}
		}
	}
}
