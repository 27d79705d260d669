package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/cloudauth"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// VerifierOptions are the registry and cache settings of the gate
// configuration, the same for `serve` and `check` so that both read
// registries alike.
//
// Registry credentials come from the docker keychain: $DOCKER_CONFIG/
// config.json or ~/.docker/config.json (`docker login`, `crane auth
// login`, a kubernetes.io/dockerconfigjson Secret mounted by the chart's
// registryCredentials), else $REGISTRY_AUTH_FILE or Podman's auth.json;
// anonymous when there is none. The file is read again on every lookup, so
// a rotated Secret applies without a restart (to registry sessions begun
// after it; the verifier renews its sessions every 10 minutes). The
// credential guard sends a credential only to the hosts it is given for.
//
// registry.cloudCredentials add the gate's workload identity in a cloud
// (internal/cloudauth) after the docker keychain: an explicit credential
// for a host comes first.
//
// registry.certificateAuthorities are read when the configuration is
// parsed; like every registry setting they apply from start.
func VerifierOptions(cfg *policy.Config) (verifier.Options, error) {
	kc, err := gateKeychain(cfg)
	if err != nil {
		return verifier.Options{}, err
	}
	return verifier.Options{
		Keychain:           kc,
		Timeout:            cfg.Registry.Timeout,
		MaxManifestBytes:   cfg.Registry.MaxManifestBytes,
		InsecureRegistries: append([]string(nil), cfg.Registry.InsecureRegistries...),
		AllowedHosts:       append([]string(nil), cfg.Registry.AllowedHosts...),
		BlockedNetworks:    cfg.Registry.BlockedPrefixes(),
		Proxy:              cfg.Registry.ProxyURL(),
		TokenRealms:        tokenRealms(cfg.Registry.TokenRealms),
		CacheSize:          cfg.Cache.MaxEntries,
		TTL:                cfg.Cache.TTL,
		FailureTTL:         cfg.Cache.FailureTTL,
		TagTTL:             verifierTagTTL(cfg.Cache.TagTTL),
		RegistryCAs:        cfg.Registry.CertificateAuthorityPools(),
		Mirrors:            mirrors(cfg.Registry.Mirrors),
	}, nil
}

// gateKeychain is the docker keychain, followed by the cloud providers of
// registry.cloudCredentials when any is enabled.
func gateKeychain(cfg *policy.Config) (authn.Keychain, error) {
	enabled := make([]cloudauth.Enabled, len(cfg.Registry.CloudCredentials))
	for i, c := range cfg.Registry.CloudCredentials {
		enabled[i] = cloudauth.Enabled{Provider: c.Provider, Registries: c.Registries}
	}
	cloud, err := cloudauth.New(cloudauth.Options{
		Enabled:  enabled,
		Settings: cloudauth.Settings{Transport: cloudTransport(cfg.Registry.ProxyURL())},
		Logger:   slog.Default(),
	})
	if err != nil {
		return nil, fmt.Errorf("configure registry credentials: %w", err)
	}
	if cloud == nil {
		return authn.DefaultKeychain, nil
	}
	return authn.NewMultiKeychain(authn.DefaultKeychain, cloud), nil
}

// cloudTransport carries the exchanges with the clouds' token services
// through registry.proxy when one is set, except those with the node's
// metadata and credential endpoints (link-local or loopback addresses),
// which a proxy cannot reach. Without registry.proxy, no proxy: the gate
// ignores HTTPS_PROXY as it does for registries.
func cloudTransport(proxy *url.URL) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if proxy != nil {
		t.Proxy = func(r *http.Request) (*url.URL, error) {
			if local(r.URL.Hostname()) {
				return nil, nil
			}
			return proxy, nil
		}
	}
	return t
}

// local reports whether host is a link-local or loopback address, or
// localhost.
func local(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast()
}

// newVerifier builds the verifier from the configuration at start. Cache
// and registry settings apply from start; a reload changes policies and
// decisions, not these.
func newVerifier(cfg *policy.Config, m *admission.Metrics) (*verifier.Verifier, error) {
	o, err := VerifierOptions(cfg)
	if err != nil {
		return nil, err
	}
	o.Observer = m
	return verifier.New(o)
}

// verifierTagTTL translates cache.tagTTL: 0 in the configuration disables
// the tag cache (docs/admission.md); the verifier spells that as a negative TTL and
// reads 0 as "default".
func verifierTagTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// tokenRealms converts registry.tokenRealms for the verifier.
func tokenRealms(pairs []policy.TokenRealm) []verifier.TokenRealm {
	if len(pairs) == 0 {
		return nil
	}
	out := make([]verifier.TokenRealm, len(pairs))
	for i, p := range pairs {
		out[i] = verifier.TokenRealm{Registry: p.Registry, Realm: p.Realm}
	}
	return out
}

// mirrors converts registry.mirrors for the verifier. The configuration
// was validated (policy.ParseConfig): a mirror that does not parse cannot
// occur there, and is kept as written for the verifier to refuse.
func mirrors(cfg map[string][]string) map[string][]verifier.Mirror {
	if len(cfg) == 0 {
		return nil
	}
	out := make(map[string][]verifier.Mirror, len(cfg))
	for reg, list := range cfg {
		for _, s := range list {
			m, err := verifier.ParseMirror(s)
			if err != nil {
				m = verifier.Mirror{Host: s}
			}
			out[reg] = append(out[reg], m)
		}
	}
	return out
}
