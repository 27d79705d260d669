package admission

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/verifier"
)

// MaxRegistryHosts bounds the registry label of
// signgate_registry_request_duration_seconds: of the hosts given to
// SetRegistryHosts, the first MaxRegistryHosts are labels; every other
// host is "other".
const MaxRegistryHosts = 64

// registryOperations are the operations verifier.Observer reports; any
// other is "other".
var registryOperations = map[string]bool{"ping": true, "token": true, "manifest": true, "blob": true, "referrers": true, "tags": true}

// Metrics are signgate's Prometheus metrics (docs/admission.md, "Metrics and logs"), registered on a
// registry the caller owns. It implements verifier.Observer and
// verifier.RegistryLatencyObserver, and a nil
// *Metrics records nothing. Safe for concurrent use.
type Metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	registryTime  *prometheus.HistogramVec
	registryHosts atomic.Pointer[map[string]struct{}] // the registry label's hosts; nil: none
	cache         *prometheus.CounterVec
	registry      *prometheus.CounterVec
	verifications *prometheus.CounterVec
	configReloads *prometheus.CounterVec
	panics        *prometheus.CounterVec
	findings      *prometheus.CounterVec
	policies      *policyLabels // bounds the policy label of findings
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_admission_requests_total",
			Help: "AdmissionReviews answered, by webhook, operation, kind and decision (allowed, denied, undecided, error, bad_request).",
		}, []string{"webhook", "operation", "kind", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signgate_admission_duration_seconds",
			Help:    "Time to answer an AdmissionReview, from request to response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 20, 25, 30}, // to the webhook's 30s limit
		}, []string{"webhook"}),
		registryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "signgate_registry_request_duration_seconds",
			Help: "Registry HTTP request latency, from sending the request to the response headers or a transport error, " +
				"by registry (a host the policies' image globs name literally, canonical, at most 64 of them; any other host is other) " +
				"and operation (ping, token, manifest, blob, referrers, tags).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 20, 25, 30},
		}, []string{"registry", "operation"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_cache_requests_total",
			Help: "Cache lookups by cache (verdict, tag) and result (hit, miss).",
		}, []string{"cache", "result"}),
		registry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_registry_requests_total",
			Help: "Registry HTTP requests by operation and status code (0: transport error).",
		}, []string{"operation", "code"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_verifications_total",
			Help: "Signature verifications actually run (cache misses), by result (verified, not_verified, undecided).",
		}, []string{"result"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_config_reloads_total",
			Help: "Configuration and policy reloads by result (success, failure).",
		}, []string{"result"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_panics_total",
			Help: "Panics recovered in registry work, by operation (verify, resolve); each answered undecided. Please report them.",
		}, []string{"op"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_policy_findings_total",
			Help: "Findings of the reviews the validating webhook answered (dry runs excluded), one per distinct line of the answer, " +
				"by policy (ClusterImagePolicy/<name>, ImagePolicy/<namespace>/<name>, PodSecurity, hardening/<check>, none; " +
				"after 256 distinct ClusterImagePolicy and ImagePolicy values every new one is other), " +
				"mode (enforce: the line denied or asked to retry; warn: a warning; audit: an audit annotation; " +
				"warn and audit admit, so a policy in either counts what it would deny under enforce) " +
				"and result (the reason code).",
		}, []string{"policy", "mode", "result"}),
		policies: newPolicyLabels(maxPolicyLabels),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.registryTime, m.cache, m.registry, m.verifications, m.configReloads, m.panics, m.findings} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// The series of closed label sets exist from start, at 0, so that
	// rates and alerts on them have a series before the first event.
	for _, r := range []string{"success", "failure"} {
		m.configReloads.WithLabelValues(r)
	}
	for _, op := range []string{"verify", "resolve"} {
		m.panics.WithLabelValues(op)
	}
	return m, nil
}

// SetRegistryHosts sets the hosts that label
// signgate_registry_request_duration_seconds by registry: the first
// MaxRegistryHosts distinct ones (canonical as internal/imageref.Host
// gives them), replacing those of the previous call; requests to any
// other host count as "other". The server calls it with the hosts of the
// policies' globs whenever they are compiled.
func (m *Metrics) SetRegistryHosts(hosts []string) {
	if m == nil {
		return
	}
	set := make(map[string]struct{}, min(len(hosts), MaxRegistryHosts))
	for _, h := range hosts {
		if len(set) == MaxRegistryHosts {
			break
		}
		if h = imageref.Host(h); h != "" && h != "other" {
			set[h] = struct{}{}
		}
	}
	m.registryHosts.Store(&set)
}

// registryLabel is host's registry label: itself, canonical, when
// SetRegistryHosts named it, else "other".
func (m *Metrics) registryLabel(host string) string {
	p := m.registryHosts.Load()
	if p == nil {
		return "other"
	}
	host = imageref.Host(host)
	if _, ok := (*p)[host]; ok {
		return host
	}
	return "other"
}

// RegistryRequestDuration implements verifier.RegistryLatencyObserver.
func (m *Metrics) RegistryRequestDuration(host, operation string, d time.Duration) {
	if m == nil {
		return
	}
	if !registryOperations[operation] {
		operation = "other"
	}
	m.registryTime.WithLabelValues(m.registryLabel(host), operation).Observe(d.Seconds())
}

// CacheRequest implements verifier.Observer.
func (m *Metrics) CacheRequest(cache, result string) {
	if m != nil {
		m.cache.WithLabelValues(cache, result).Inc()
	}
}

// RegistryRequest implements verifier.Observer.
func (m *Metrics) RegistryRequest(operation string, code int) {
	if m != nil {
		m.registry.WithLabelValues(operation, strconv.Itoa(code)).Inc()
	}
}

// Verification implements verifier.Observer.
func (m *Metrics) Verification(result string) {
	if m != nil {
		m.verifications.WithLabelValues(result).Inc()
	}
}

// Panic implements verifier.Observer. op is "verify" or "resolve"; any
// other value is counted as "other", so that the label set stays closed.
func (m *Metrics) Panic(op string) {
	if m == nil {
		return
	}
	if op != "verify" && op != "resolve" {
		op = "other"
	}
	m.panics.WithLabelValues(op).Inc()
}

// ConfigReload counts a configuration or policy reload, result "success" or
// "failure".
func (m *Metrics) ConfigReload(result string) {
	if m != nil {
		m.configReloads.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) observeAdmission(webhook, operation, kind, decision string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(webhook, operation, kind, decision).Inc()
	if decision != "bad_request" {
		m.duration.WithLabelValues(webhook).Observe(d.Seconds())
	}
}

// observeFindings counts the findings of one validating review.
func (m *Metrics) observeFindings(list []Finding) {
	if m == nil {
		return
	}
	for _, f := range list {
		m.findings.WithLabelValues(m.policies.label(f), findingMode(f.Severity), string(f.Code)).Inc()
	}
}

var (
	_ verifier.Observer                = (*Metrics)(nil)
	_ verifier.RegistryLatencyObserver = (*Metrics)(nil)
)
