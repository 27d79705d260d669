package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	psapi "k8s.io/pod-security-admission/api"

	"github.com/signgate/signgate/internal/imageref"
)

// The apiVersion and kind a gate configuration file must declare.
const (
	ConfigAPIVersion = "signgate.dev/v1alpha1"
	ConfigKind       = "GateConfiguration"
)

// UnmatchedAction says what happens to an image no trust policy matches.
type UnmatchedAction string

// The values of unmatchedImages.
const (
	UnmatchedDeny  UnmatchedAction = "deny"  // deny the request (default)
	UnmatchedWarn  UnmatchedAction = "warn"  // admit with a warning
	UnmatchedAllow UnmatchedAction = "allow" // admit silently
)

// Config is the gate configuration (docs/helm.md, values `config`), the file given with
// --config. Build one with ParseConfig or DefaultConfig: they apply defaults,
// validate, and compile what the hot path needs (Pod Security defaults,
// namespace selectors, networks). A Config is immutable once built and safe
// for concurrent use; do not modify a Config that is in use.
type Config struct {
	APIVersion string `yaml:"apiVersion"` // must be ConfigAPIVersion
	Kind       string `yaml:"kind"`       // must be ConfigKind

	// UnmatchedImages applies to images no policy matches. Default deny.
	UnmatchedImages UnmatchedAction `yaml:"unmatchedImages"`
	// ExemptNamespaces are never evaluated at all (no pinning, no
	// verification, no Pod Security). Default none; the gate adds its own
	// namespace at run time (see Exempt).
	ExemptNamespaces []string `yaml:"exemptNamespaces"`
	// PodSecurity configures the Pod Security Standards evaluation.
	PodSecurity PodSecurityConfig `yaml:"podSecurity"`
	// HardeningChecks are the opt-in checks beyond Pod Security, in the
	// order they run. Default none.
	HardeningChecks []HardeningRule `yaml:"hardening"`
	// Policies says how trust policies combine.
	Policies PoliciesConfig `yaml:"policies"`
	// Pinning configures the mutating webhook.
	Pinning PinningConfig `yaml:"pinning"`
	// Cache sizes the verifier's caches.
	Cache CacheConfig `yaml:"cache"`
	// Registry limits how the verifier talks to registries.
	Registry RegistryConfig `yaml:"registry"`

	psDefaults psapi.Policy // compiled from PodSecurity.Defaults
}

// PodSecurityConfig is the podSecurity section.
type PodSecurityConfig struct {
	// Defaults apply where a namespace has no pod-security.kubernetes.io
	// labels. Default restricted/latest for enforce, warn and audit.
	Defaults PodSecurityDefaults `yaml:"defaults"`
	// Exemptions skip Pod Security (only) like PSA's exemptions do.
	Exemptions PodSecurityExemptions `yaml:"exemptions"`
	// Workloads says how violations in workload templates (Deployment,
	// CronJob, …) are reported: ModeEnforce (default) denies them, ModeWarn
	// admits them with a warning as PSA does. Pods are always enforced.
	Workloads Mode `yaml:"workloads"`
}

// PodSecurityDefaults are levels ("privileged", "baseline", "restricted")
// and versions ("latest", "v1.N"), keyed like the namespace labels.
type PodSecurityDefaults struct {
	Enforce        string `yaml:"enforce"`
	EnforceVersion string `yaml:"enforce-version"`
	Warn           string `yaml:"warn"`
	WarnVersion    string `yaml:"warn-version"`
	Audit          string `yaml:"audit"`
	AuditVersion   string `yaml:"audit-version"`
}

// PodSecurityExemptions mirror PSA's: requests by these users, pods with
// these runtime classes and pods in these namespaces skip Pod Security.
type PodSecurityExemptions struct {
	Usernames      []string `yaml:"usernames"`
	RuntimeClasses []string `yaml:"runtimeClasses"`
	Namespaces     []string `yaml:"namespaces"`
}

// PoliciesConfig is the policies section.
type PoliciesConfig struct {
	// NamespacePoliciesCoverImages lets an ImagePolicy cover an image for
	// unmatchedImages: an image only ImagePolicies match is then judged by
	// them alone. Default false: ClusterImagePolicies decide which images are
	// covered and ImagePolicies only add requirements on top, since anyone
	// who can edit a namespace can write one.
	NamespacePoliciesCoverImages bool `yaml:"namespacePoliciesCoverImages"`
}

// Covers reports whether the requirements found for an image cover it, so
// that unmatchedImages does not apply: a cluster policy applies, or (with
// policies.namespacePoliciesCoverImages) any policy does. The requirements
// apply either way.
func (c *Config) Covers(reqs []Requirement) bool {
	for _, r := range reqs {
		if !r.Namespaced || c.Policies.NamespacePoliciesCoverImages {
			return true
		}
	}
	return false
}

// PinningConfig is the pinning section.
type PinningConfig struct {
	// WorkloadTemplates pins images in workload templates too. Default
	// false: pods are always pinned, templates only on request, because a
	// pinned template drifts from what GitOps tools applied.
	WorkloadTemplates bool `yaml:"workloadTemplates"`
}

// CacheConfig is the cache section. Every value must be positive.
type CacheConfig struct {
	MaxEntries int           `yaml:"maxEntries"` // verified verdicts, and as many definite failures; default 10000
	TTL        time.Duration `yaml:"ttl"`        // verified verdicts, default 10m
	FailureTTL time.Duration `yaml:"failureTTL"` // definite failures, default 30s
	TagTTL     time.Duration `yaml:"tagTTL"`     // tag→digest resolutions, default 15s; 0 disables the tag cache
}

// RegistryConfig is the registry section.
type RegistryConfig struct {
	// Timeout bounds each registry operation, default 5s; always inside the
	// admission deadline, so it must be below the webhook's 30s maximum.
	Timeout time.Duration `yaml:"timeout"`
	// MaxManifestBytes bounds manifest reads, default 4 MiB.
	MaxManifestBytes int64 `yaml:"maxManifestBytes"`
	// InsecureRegistries are host[:port] reachable over plain HTTP. Default none.
	InsecureRegistries []string `yaml:"insecureRegistries"`
	// AllowedHosts are host[:port] the gate may reach although they resolve
	// into a blocked network (e.g. an in-cluster registry on a link-local
	// address, or 127.0.0.1 in tests). Default none.
	AllowedHosts []string `yaml:"allowedHosts"`
	// BlockedNetworks, when set, replace the verifier's default blocked
	// ranges (loopback, link-local, unspecified, multicast) with these CIDRs;
	// an empty list blocks nothing. Absent (nil) keeps the default. See
	// BlockedPrefixes for the parsed form.
	BlockedNetworks []string `yaml:"blockedNetworks"`
	// Proxy is an http:// or https:// URL (scheme, host and optional port
	// only) every registry request goes through. Default none: the gate
	// ignores HTTPS_PROXY and HTTP_PROXY. Registry hosts are still checked
	// against the blocked networks before the proxy is asked; the proxy's
	// own host:port is allowed. See ProxyURL for the parsed form.
	Proxy string `yaml:"proxy"`
	// TokenRealms are the (registry, token realm host) pairs where a
	// registry may send the gate for a token on another host, in addition
	// to the built-in ones (Docker Hub → auth.docker.io, registry.gitlab.com
	// → gitlab.com). A realm on the registry's own host is always used;
	// any other is refused before it is contacted. Default none.
	TokenRealms []TokenRealm `yaml:"tokenRealms"`
	// CertificateAuthorities map a registry host[:port] to the absolute
	// path of a PEM file of CA certificates: the registry's TLS
	// certificate must chain to one of them, and only to them (not the
	// system roots). A key without port covers every port of the host;
	// host:port that port only, ahead of the host's entry. The files are
	// read when the configuration is parsed. Default none. See
	// CertificateAuthorityPools for the parsed form.
	CertificateAuthorities map[string]string `yaml:"certificateAuthorities"`
	// Mirrors maps a registry (host[:port] as in an image reference;
	// docker.io and index.docker.io are one registry) to the mirrors the
	// gate reads its repositories from, each host[:port][/path prefix],
	// tried in order before the registry itself, as containerd's hosts.toml
	// does for nodes: a mirror that is unreachable, answers 5xx or 404, or
	// denies access is skipped. Policies, caches, verdicts and messages
	// keep the original names; only the reads move. Mirror hosts obey the
	// other settings (blockedNetworks, allowedHosts, insecureRegistries,
	// tokenRealms) like any registry. Default none.
	Mirrors map[string][]string `yaml:"mirrors"`
	// CloudCredentials enable registry credentials from the gate's own
	// workload identity, per cloud: ecr (IRSA or EKS Pod Identity), google
	// (GKE Workload Identity) or azure (Entra Workload ID). Each entry
	// serves its cloud's registry hosts, or only Registries when set; a
	// credential in the docker keychain for a host comes first. Default
	// none.
	CloudCredentials []CloudCredential `yaml:"cloudCredentials"`

	blocked []netip.Prefix
	proxy   *url.URL
	cas     map[string]*x509.CertPool
}

// TokenRealm allows the registry Registry (host[:port] as in an image
// reference) to name a token realm on the host Realm (host or host:port of
// the realm URL).
type TokenRealm struct {
	Registry string `yaml:"registry"`
	Realm    string `yaml:"realm"`
}

// CloudCredential is one entry of registry.cloudCredentials.
type CloudCredential struct {
	// Provider is ecr, google or azure.
	Provider string `yaml:"provider"`
	// Registries, when set, are the only registry hosts the provider's
	// credential is used for; each must be a host of that cloud. Default
	// every registry host of the cloud.
	Registries []string `yaml:"registries"`
}

// ProxyURL returns Proxy parsed, or nil when no proxy is configured.
func (r *RegistryConfig) ProxyURL() *url.URL {
	return r.proxy
}

// CertificateAuthorityPools returns CertificateAuthorities read: the
// certificate pool of each registry host[:port], or nil when none is
// configured. The map is shared: do not modify it.
func (r *RegistryConfig) CertificateAuthorityPools() map[string]*x509.CertPool {
	return r.cas
}

// BlockedPrefixes returns BlockedNetworks parsed, or nil when the
// configuration does not override the verifier's default.
func (r *RegistryConfig) BlockedPrefixes() []netip.Prefix {
	return r.blocked
}

// DefaultConfig returns the configuration used when no file is given: every
// defaults documented in docs/policies.md and docs/helm.md and no hardening checks.
func DefaultConfig() *Config {
	c := defaults()
	c.APIVersion, c.Kind = ConfigAPIVersion, ConfigKind
	if errs := c.validate(); len(errs) > 0 {
		panic(fmt.Sprintf("policy: invalid default configuration: %v", errs)) // a bug, caught by tests
	}
	return c
}

// defaults returns an unvalidated Config holding every default but
// apiVersion and kind, which a file must declare; ParseConfig decodes the
// file over it so absent fields keep their default.
func defaults() *Config {
	return &Config{
		UnmatchedImages: UnmatchedDeny,
		PodSecurity: PodSecurityConfig{
			Defaults: PodSecurityDefaults{
				Enforce: string(psapi.LevelRestricted), EnforceVersion: psapi.VersionLatest,
				Warn: string(psapi.LevelRestricted), WarnVersion: psapi.VersionLatest,
				Audit: string(psapi.LevelRestricted), AuditVersion: psapi.VersionLatest,
			},
			Workloads: ModeEnforce,
		},
		Cache: CacheConfig{MaxEntries: 10000, TTL: 10 * time.Minute, FailureTTL: 30 * time.Second, TagTTL: 15 * time.Second},
		Registry: RegistryConfig{
			Timeout:          5 * time.Second,
			MaxManifestBytes: 4 << 20,
		},
	}
}

// ParseConfig decodes a GateConfiguration strictly (unknown and duplicate
// fields are errors), applies defaults to absent fields, and validates it.
// Every problem is reported, one per line, as "line N: field.path: what is
// allowed".
func ParseConfig(data []byte) (*Config, error) {
	root, err := parseNode(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", ConfigKind, err)
	}
	c := defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", ConfigKind, decodeError(root, err))
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, fmt.Errorf("parse %s: %w", ConfigKind, errs.withLines(root))
	}
	return c, nil
}

// parseNode returns the document's root mapping, refusing empty input and
// more than one document.
func parseNode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty document: want apiVersion: " + ConfigAPIVersion + ", kind: " + ConfigKind)
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, fmt.Errorf("line %d: only one document is allowed", line)
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping with apiVersion: %s, kind: %s", root.Line, ConfigAPIVersion, ConfigKind)
	}
	return root, nil
}

// Exempt reports whether namespace is never evaluated: it is listed in
// exemptNamespaces or is one of also (the gate passes its own namespace).
func (c *Config) Exempt(namespace string, also ...string) bool {
	return slices.Contains(c.ExemptNamespaces, namespace) || slices.Contains(also, namespace)
}

// validate checks every field, applies per-element defaults and compiles
// what the hot path uses. It returns every problem found.
func (c *Config) validate() problems {
	var errs problems
	if c.APIVersion != ConfigAPIVersion {
		errs.add(path{"apiVersion"}, "must be %s (got %q)", ConfigAPIVersion, c.APIVersion)
	}
	if c.Kind != ConfigKind {
		errs.add(path{"kind"}, "must be %s (got %q)", ConfigKind, c.Kind)
	}
	switch c.UnmatchedImages {
	case UnmatchedDeny, UnmatchedWarn, UnmatchedAllow:
	default:
		errs.add(path{"unmatchedImages"}, "must be one of deny, warn, allow (got %q)", c.UnmatchedImages)
	}
	errs.namespaces(path{"exemptNamespaces"}, c.ExemptNamespaces)
	c.validatePodSecurity(&errs)
	for i := range c.HardeningChecks {
		c.HardeningChecks[i].compile(path{"hardening", i}, &errs)
	}
	c.Cache.validate(&errs)
	c.Registry.validate(&errs)
	return errs
}

func (c *Config) validatePodSecurity(errs *problems) {
	p := path{"podSecurity"}
	d := c.PodSecurity.Defaults
	c.psDefaults.Enforce = parseLevelVersion(errs, p.to("defaults"), "enforce", d.Enforce, d.EnforceVersion)
	c.psDefaults.Warn = parseLevelVersion(errs, p.to("defaults"), "warn", d.Warn, d.WarnVersion)
	c.psDefaults.Audit = parseLevelVersion(errs, p.to("defaults"), "audit", d.Audit, d.AuditVersion)
	ex := c.PodSecurity.Exemptions
	errs.namespaces(p.to("exemptions", "namespaces"), ex.Namespaces)
	errs.nonEmpty(p.to("exemptions", "usernames"), ex.Usernames)
	errs.nonEmpty(p.to("exemptions", "runtimeClasses"), ex.RuntimeClasses)
	if w := c.PodSecurity.Workloads; w != ModeEnforce && w != ModeWarn {
		errs.add(p.to("workloads"), "must be one of enforce, warn (got %q)", w)
	}
}

// parseLevelVersion parses one mode's default strictly: unlike namespace
// labels, a bad configuration value is an error, not a fallback.
func parseLevelVersion(errs *problems, p path, mode, level, version string) psapi.LevelVersion {
	l, err := psapi.ParseLevel(level)
	if err != nil {
		errs.add(p.to(mode), "must be one of privileged, baseline, restricted (got %q)", level)
	}
	v, err := psapi.ParseVersion(version)
	if err != nil {
		errs.add(p.to(mode+"-version"), `must be "latest" or "v1.N" (got %q)`, version)
	}
	return psapi.LevelVersion{Level: l, Version: v}
}

func (cc *CacheConfig) validate(errs *problems) {
	if cc.MaxEntries <= 0 {
		errs.add(path{"cache", "maxEntries"}, "must be a positive number of entries (got %d)", cc.MaxEntries)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"ttl", cc.TTL}, {"failureTTL", cc.FailureTTL}} {
		if d.v <= 0 {
			errs.add(path{"cache", d.field}, "must be a positive duration such as 30s (got %s)", d.v)
		}
	}
	if cc.TagTTL < 0 {
		errs.add(path{"cache", "tagTTL"}, "must be a duration such as 15s, or 0 to disable the tag cache (got %s)", cc.TagTTL)
	}
}

// maxRegistryTimeout is the longest an admission webhook may take.
const maxRegistryTimeout = 30 * time.Second

func (r *RegistryConfig) validate(errs *problems) {
	if r.Timeout <= 0 || r.Timeout >= maxRegistryTimeout {
		errs.add(path{"registry", "timeout"}, "must be a duration between 0s and 30s, the webhook deadline, such as 5s (got %s)", r.Timeout)
	}
	if r.MaxManifestBytes <= 0 {
		errs.add(path{"registry", "maxManifestBytes"}, "must be a positive number of bytes (got %d)", r.MaxManifestBytes)
	}
	errs.hosts(path{"registry", "insecureRegistries"}, r.InsecureRegistries)
	errs.hosts(path{"registry", "allowedHosts"}, r.AllowedHosts)
	r.blocked = nil
	if r.BlockedNetworks != nil {
		r.blocked = make([]netip.Prefix, 0, len(r.BlockedNetworks))
	}
	for i, s := range r.BlockedNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			errs.add(path{"registry", "blockedNetworks", i}, "must be a CIDR such as 10.0.0.0/8 or fd00::/8 (got %q)", s)
			continue
		}
		r.blocked = append(r.blocked, p.Masked())
	}
	for i, tr := range r.TokenRealms {
		if !validHost(tr.Registry) {
			errs.add(path{"registry", "tokenRealms", i, "registry"}, "must be the registry's host or host:port without scheme or path, such as index.docker.io (got %q)", tr.Registry)
		}
		if !validHost(tr.Realm) || strings.Contains(tr.Realm, "://") {
			errs.add(path{"registry", "tokenRealms", i, "realm"}, "must be the token realm's host or host:port without scheme or path, such as auth.docker.io (got %q)", tr.Realm)
		}
	}
	r.validateMirrors(errs)
	r.validateCloudCredentials(errs)
	r.proxy = nil
	if r.Proxy != "" {
		u, err := parseProxy(r.Proxy)
		if err != nil {
			errs.add(path{"registry", "proxy"}, "must be a proxy URL such as http://proxy.example:3128: %v", err)
		} else {
			r.proxy = u
		}
	}
	r.validateCAs(errs)
}

// maxCABundleBytes bounds a registry CA file: a bundle of a few hundred
// certificates.
const maxCABundleBytes = 1 << 20

// validateCAs reads registry.certificateAuthorities, in key order so that
// problems are reported in a stable order.
func (r *RegistryConfig) validateCAs(errs *problems) {
	r.cas = nil
	if len(r.CertificateAuthorities) == 0 {
		return
	}
	insecure := map[string]bool{}
	for _, h := range r.InsecureRegistries {
		insecure[imageref.Host(h)] = true
	}
	r.cas = make(map[string]*x509.CertPool, len(r.CertificateAuthorities))
	for _, host := range slices.Sorted(maps.Keys(r.CertificateAuthorities)) {
		file := r.CertificateAuthorities[host]
		p := path{"registry", "certificateAuthorities", mapKey(host)}
		switch {
		case !validHost(host):
			errs.add(p, "key must be the registry's host or host:port without scheme or path, such as registry.corp.example or harbor.corp.example:8443 (got %q)", host)
			continue
		case insecure[imageref.Host(host)]:
			errs.add(p, "%s is also in registry.insecureRegistries: a registry is reached either over plain HTTP or over TLS verified with its CA bundle; remove it from one of the two", host)
			continue
		case !filepath.IsAbs(file):
			errs.add(p, "must be the absolute path of a PEM file of CA certificates for registry %s, such as /etc/signgate/registry-ca/ca.pem (got %q)", host, file)
			continue
		}
		pool, err := readCABundle(file)
		if err != nil {
			errs.add(p, "CA bundle of registry %s: %v", host, err)
			continue
		}
		r.cas[host] = pool
	}
}

// pathErr is err without the operation and path a *fs.PathError adds.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readCABundle reads a PEM file of CA certificates: a regular file of at
// most maxCABundleBytes holding at least one CERTIFICATE block, every one
// of which must parse. Other blocks are ignored.
func readCABundle(file string) (*x509.CertPool, error) {
	const fix = "mount the file there (chart: registryCAs.existingConfigMap) or fix the path"
	fi, err := os.Stat(file)
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read %s: %v; %s", file, pathErr(err), fix)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file; %s", file, fix)
	case fi.Size() > maxCABundleBytes:
		return nil, fmt.Errorf("%s is larger than %d bytes, too large for a CA bundle", file, maxCABundleBytes)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v; %s", file, pathErr(err), fix)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d does not parse (%v); the file must hold PEM CA certificates", file, n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate; it must hold the registry's CA certificates, each from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----", file)
	}
	return pool, nil
}

// parseProxy accepts scheme://host[:port] with scheme http or https and
// nothing else: a path, query or credentials in the URL are refused, so
// a typo does not silently send requests elsewhere and no secret sits in a
// ConfigMap.
func parseProxy(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme must be http or https (got %q)", s)
	case u.User != nil:
		return nil, errors.New("credentials in the URL are not supported")
	case u.Hostname() == "" || u.Opaque != "":
		return nil, fmt.Errorf("no host (got %q)", s)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("want only scheme, host and port (got %q)", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port must be 1-65535 (got %q)", s)
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// validHost accepts host or host:port as written in an image reference,
// with no scheme, path or credentials.
func validHost(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/@ \t") && strings.TrimSpace(s) == s
}

func (errs *problems) hosts(p path, hosts []string) {
	for i, h := range hosts {
		if !validHost(h) {
			errs.add(p.to(i), "must be host or host:port without scheme or path, such as registry.local:5000 (got %q)", h)
		}
	}
}
