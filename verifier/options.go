package verifier

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signgate/signgate/internal/imageref"
)

// Defaults for Options fields left zero.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultMaxManifestBytes = 4 << 20 // 4 MiB: larger than any real manifest or index
	// DefaultMaxSignatureManifestBytes: a .sig manifest with 100 cosign
	// signatures, or a referrers index listing 100 bundles, is ~50-100 KiB.
	DefaultMaxSignatureManifestBytes  = 512 << 10
	DefaultMaxConcurrentVerifications = 16
	DefaultMaxBytesInFlight           = 64 << 20 // 64 MiB
	DefaultMaxPayloadBytes            = 1 << 20  // 1 MiB: a cosign payload or bundle is a few KiB
	DefaultMaxSignatures              = 100
	DefaultMaxAttestationBytes        = 4 << 20 // 4 MiB: an attestation may carry a whole SBOM
	DefaultCacheSize                  = 10000
	DefaultTTL                        = 10 * time.Minute
	DefaultFailureTTL                 = 30 * time.Second
	DefaultTagTTL                     = 15 * time.Second
	maxRedirects                      = 3
)

// DefaultBlockedNetworks are the address ranges a registry host may not
// resolve to unless it is listed in Options.AllowedHosts: loopback,
// link-local (which includes the 169.254.169.254 metadata service),
// unspecified and multicast. They stop image strings from turning the gate
// into a proxy for internal endpoints.
func DefaultBlockedNetworks() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("ff00::/8"),
	}
}

// Observer receives metrics events. Implementations must be safe for
// concurrent use and fast; a nil Observer records nothing.
type Observer interface {
	// CacheRequest: cache "verdict"|"tag", result "hit"|"miss".
	CacheRequest(cache, result string)
	// RegistryRequest: operation "ping"|"token"|"manifest"|"blob"|
	// "referrers"|"tags"; code 0 means a transport error.
	RegistryRequest(operation string, code int)
	// Verification: "verified"|"not_verified"|"undecided", once per
	// verification actually run (not per cache hit).
	Verification(result string)
	// Panic: the work of a "verify"|"resolve" call panicked on data read
	// from a registry and was recovered; the callers got an undecided
	// answer. A verification that panicked is not counted by Verification.
	Panic(op string)
}

// RegistryLatencyObserver is an Observer that also receives the latency of
// each registry request. The Verifier checks for it by type assertion, so
// an Observer written before it existed keeps working unchanged.
type RegistryLatencyObserver interface {
	// RegistryRequestDuration: host is the request URL's host[:port] as
	// sent (a token realm's host for "token", a mirror's for a mirrored
	// read), operation as for RegistryRequest, d the time from sending the
	// request to its response headers or its transport error. Called once
	// per RegistryRequest, just before it.
	RegistryRequestDuration(host, operation string, d time.Duration)
}

// Options are the optional settings of a Verifier. The zero value is usable:
// every field states its default.
type Options struct {
	// Keychain resolves registry credentials. Default authn.Anonymous.
	Keychain authn.Keychain
	// Timeout bounds each Resolve and each verification, always inside the
	// caller's deadline. Default 5s.
	Timeout time.Duration
	// InsecureRegistries are host[:port] reached over plain HTTP. Every
	// other registry is reached over HTTPS only. Default none.
	InsecureRegistries []string
	// AllowedHosts are host[:port] allowed although they resolve into
	// BlockedNetworks (e.g. a registry on 127.0.0.1 in tests). Default none.
	AllowedHosts []string
	// BlockedNetworks are refused at dial time. Default
	// DefaultBlockedNetworks(); set a non-nil empty slice to block nothing.
	BlockedNetworks []netip.Prefix
	// Proxy is the HTTP or HTTPS proxy every registry request goes through.
	// Default none: the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) is
	// ignored. Before the proxy is asked, the registry host is resolved and
	// refused if an address is in BlockedNetworks, unless the host is in
	// AllowedHosts: the proxy cannot be used to reach what the dial guard
	// refuses. The proxy's own host:port is allowed although it may resolve
	// into BlockedNetworks. Setting both Proxy and Transport is an error.
	Proxy *url.URL
	// TokenRealms are the (registry, token realm host) pairs where a
	// registry may send the gate for a token on another host, in addition
	// to DefaultTokenRealms(). A realm on the registry's own host is always
	// used; a realm on any other host is refused before it is contacted
	// (a definite error naming both hosts). The realm host still passes
	// the dial guard (BlockedNetworks, AllowedHosts) like any registry.
	TokenRealms []TokenRealm
	// MaxManifestBytes caps image manifest and index bodies (Resolve, and
	// any manifest read outside the signature layouts). Default 4 MiB.
	MaxManifestBytes int64
	// MaxSignatureManifestBytes caps what the signature layouts read as
	// manifests: the classic sha256-<hex>.sig manifest, the referrers
	// index (from the referrers API or the sha256-<hex> fallback tag) and
	// each bundle's manifest. The cap is enforced while the body is read
	// (and from Content-Length before). A larger answer is a definite
	// "not verified" whose Reason names it (unless the other layout
	// reaches the threshold). Default 512 KiB.
	MaxSignatureManifestBytes int64
	// MaxPayloadBytes caps a signature payload or bundle blob. Default 1 MiB.
	MaxPayloadBytes int64
	// MaxAttestationBytes caps each attestation layer (a DSSE envelope) of
	// the classic sha256-<hex>.att manifest and each bundle blob the
	// attestation check reads from the referrers, read only when an
	// authority requires attestations. Attestations carry whole predicates (SPDX or
	// CycloneDX SBOMs, provenance), so the cap is larger than
	// MaxPayloadBytes; an attestation over it does not count. Like every
	// body it is read within MaxBytesInFlight. Default 4 MiB.
	MaxAttestationBytes int64
	// MaxSignatures is how many signatures per layout are considered; more
	// are ignored. A signature manifest or referrers index is decoded one
	// descriptor at a time and only the first MaxSignatures are kept (the
	// rest are only counted), so this also bounds the memory one layout
	// takes. Default 100.
	MaxSignatures int
	// MaxConcurrentVerifications bounds the verifications that do registry
	// work at once across all callers (one per digest and authority set:
	// callers sharing a verification count once). A verification waits for
	// a slot within its deadline; one whose callers all gave up, or whose
	// Options.Timeout passed, first is undecided, never allowed. Default
	// 16.
	MaxConcurrentVerifications int
	// MaxBytesInFlight bounds the registry response bodies being read at
	// once, across all calls: before a successful response body is read,
	// its cap (MaxPayloadBytes, MaxSignatureManifestBytes or
	// MaxManifestBytes), or its Content-Length when smaller, is reserved
	// from this budget, and released when the body is read to its end,
	// fails or is closed. A body whose cap exceeds the budget reserves all
	// of it. A request that cannot get its reservation within its deadline
	// is undecided. Default 64 MiB.
	MaxBytesInFlight int64
	// CacheSize bounds the verdict cache: up to CacheSize verified verdicts
	// plus up to CacheSize definite failures, kept apart so that a flood of
	// unsigned digests cannot evict verified ones. Default 10000; <0
	// disables the verdict cache.
	CacheSize int
	// TTL is how long a verified verdict is kept. Default 10m.
	TTL time.Duration
	// FailureTTL is how long a definite "not verified" is kept. Default 30s.
	FailureTTL time.Duration
	// TagTTL is how long a tag→digest resolution is kept. Default 15s; <0
	// disables the tag cache.
	TagTTL time.Duration
	// Transport is the base round tripper. Default: a clone of
	// http.DefaultTransport whose dialer refuses BlockedNetworks. When set,
	// the caller's transport is used as is for dialing (the network guard
	// is then the caller's job); the HTTPS-only, redirect and body-size
	// rules still apply.
	Transport http.RoundTripper
	// Observer receives metrics events. Default none.
	Observer Observer
	// RegistryCAs are the certificate authorities trusted for the TLS
	// certificates of the hosts they are keyed by: a host (every port of
	// it) or host:port (that port only, ahead of the host's entry), as
	// in an image reference. A listed host is verified against its pool
	// only, not the system roots, with the usual host name and validity
	// checks; every other host against the system roots. A key matches
	// whatever request goes to that host: a registry, its token service
	// or a redirect target. Default none. Setting RegistryCAs with
	// Transport is an error (set the roots in that transport); a key in
	// InsecureRegistries too is an error.
	RegistryCAs map[string]*x509.CertPool
	// Mirrors maps a registry (host[:port] as in an image reference;
	// "docker.io" names index.docker.io) to the mirrors its repositories
	// are read from, tried in order before the registry itself (see
	// fromMirrors): a mirror that is unreachable, answers 5xx, 404 or
	// denies access is skipped. Only the reads move: references, caches,
	// verdicts, claims and messages keep the original registry. Mirror
	// hosts obey every other option (BlockedNetworks, AllowedHosts,
	// InsecureRegistries, TokenRealms) and are read with Keychain's
	// credentials for the mirror's host. Default none.
	Mirrors map[string][]Mirror
}

// withDefaults returns a copy with defaults filled in, or an error for a
// combination that cannot work. It is called once, in New.
func (o Options) withDefaults() (Options, error) {
	if o.Keychain == nil {
		o.Keychain = authn.NewMultiKeychain() // anonymous
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.BlockedNetworks == nil {
		o.BlockedNetworks = DefaultBlockedNetworks()
	}
	if o.MaxManifestBytes == 0 {
		o.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if o.MaxSignatureManifestBytes == 0 {
		o.MaxSignatureManifestBytes = DefaultMaxSignatureManifestBytes
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if o.MaxAttestationBytes == 0 {
		o.MaxAttestationBytes = DefaultMaxAttestationBytes
	}
	if o.MaxConcurrentVerifications == 0 {
		o.MaxConcurrentVerifications = DefaultMaxConcurrentVerifications
	}
	if o.MaxBytesInFlight == 0 {
		o.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	if o.MaxSignatures == 0 {
		o.MaxSignatures = DefaultMaxSignatures
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.FailureTTL == 0 {
		o.FailureTTL = DefaultFailureTTL
	}
	if o.TagTTL == 0 {
		o.TagTTL = DefaultTagTTL
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", o.Timeout))
	}
	if o.MaxManifestBytes < 0 || o.MaxSignatureManifestBytes < 0 || o.MaxPayloadBytes < 0 || o.MaxAttestationBytes < 0 || o.MaxSignatures < 0 ||
		o.MaxConcurrentVerifications < 0 || o.MaxBytesInFlight < 0 {
		errs = append(errs, errors.New("size limits must not be negative"))
	}
	if o.TTL < 0 || o.FailureTTL < 0 {
		errs = append(errs, errors.New("cache TTLs must not be negative"))
	}
	for _, h := range append(append([]string(nil), o.InsecureRegistries...), o.AllowedHosts...) {
		if h == "" || strings.ContainsAny(h, "/ @") {
			errs = append(errs, fmt.Errorf("host %q: want host or host:port", h))
		}
	}
	if ms, err := checkMirrors(o.Mirrors); err != nil {
		errs = append(errs, err)
	} else {
		o.Mirrors = ms
	}
	if p := o.Proxy; p != nil {
		switch {
		case p.Scheme != "http" && p.Scheme != "https" || p.Hostname() == "":
			errs = append(errs, fmt.Errorf("proxy %q: want http://host[:port] or https://host[:port]", p.Redacted()))
		case o.Transport != nil:
			errs = append(errs, errors.New("proxy is not used with a caller's Transport: set the proxy in that transport"))
		}
	}
	if len(o.RegistryCAs) > 0 && o.Transport != nil {
		errs = append(errs, errors.New("registry CAs are not used with a caller's Transport: set the roots in that transport"))
	}
	insecure := hostSet(o.InsecureRegistries)
	for _, h := range slices.Sorted(maps.Keys(o.RegistryCAs)) {
		switch pool := o.RegistryCAs[h]; {
		case h == "" || strings.ContainsAny(h, "/ @"):
			errs = append(errs, fmt.Errorf("registry CA for %q: want host or host:port", h))
		case pool == nil:
			errs = append(errs, fmt.Errorf("registry CA for %s: no certificate pool", h))
		case insecure[imageref.Host(h)]:
			errs = append(errs, fmt.Errorf("registry CA for %s: the host is also an insecure (plain HTTP) registry", h))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("verifier options: %w", err)
	}
	return o, nil
}

type nopObserver struct{}

func (nopObserver) CacheRequest(string, string) {}
func (nopObserver) RegistryRequest(string, int) {}
func (nopObserver) Verification(string)         {}
func (nopObserver) Panic(string)                {}

// TokenRealm allows Registry (host[:port] as in an image reference;
// "docker.io" names index.docker.io) to name a token realm on Realm
// (host or host:port of the realm URL).
type TokenRealm struct {
	Registry string
	Realm    string
}

// DefaultTokenRealms are the public registries known to issue tokens from
// another host: Docker Hub (auth.docker.io) and GitLab.com
// (gitlab.com/jwt/auth). ghcr.io, gcr.io, *.pkg.dev, quay.io and
// public.ecr.aws serve tokens on their own host and need no entry.
func DefaultTokenRealms() []TokenRealm {
	return []TokenRealm{
		{Registry: "index.docker.io", Realm: "auth.docker.io"},
		{Registry: "registry.gitlab.com", Realm: "gitlab.com"},
	}
}
