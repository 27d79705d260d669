// Package server is `signgate serve` without its command line: the
// webhook (HTTPS) and metrics (plain HTTP) servers, wired to the
// configuration, the policy source and the verifier. cmd/signgate's serve
// and the load harness (e2e/load) build it the same way.
//
// Imports go one way: server imports admission, policy, verifier and
// internal packages; none of those imports server (imports_test.go).
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/policy"
)

// Options configure a Server: the flags of `signgate serve` (docs/cli.md)
// other than the log format.
type Options struct {
	Listen        string // webhook HTTPS address
	CertFile      string // TLS certificate, re-read when it changes
	KeyFile       string // TLS key, re-read when it changes
	ClientCAFile  string // CAs a webhook client's certificate must chain to, re-read when it changes; "": no client certificate required
	ConfigFile    string // GateConfiguration; default: built-in defaults
	Kubeconfig    string // default: $KUBECONFIG, ~/.kube/config, in-cluster
	PolicyDir     string // policies, Namespaces, Secrets from files instead of a cluster
	MetricsListen string // plain HTTP: /healthz, /readyz, /metrics
	Namespace     string // the gate's own namespace, always exempt
	// ShutdownDelay: after SIGTERM, keep serving this long (unready, no
	// keep-alives) before closing the port, so the API server stops
	// sending here before connections are refused.
	ShutdownDelay time.Duration
	// Profiling adds net/http/pprof's /debug/pprof/ to the metrics port
	// (never to the webhook port).
	Profiling bool
	// PodPullSecrets reads registries for each review with the pod's
	// imagePullSecrets and its service account's, from the pod's
	// namespace, ahead of the gate's own credentials
	// (internal/pullsecrets). Needs a cluster (not PolicyDir) and get on
	// Secrets and ServiceAccounts in every namespace.
	PodPullSecrets bool
	// Audit is the background audit (internal/audit); off when its
	// Interval is 0. Needs a cluster (not PolicyDir).
	Audit AuditOptions
	// Version is the version signgate_build_info reports (`signgate
	// version`'s); "" reports "unknown".
	Version string
}

// AuditOptions configure the background audit: a rescan every Interval
// and after every policy change by the replica holding the Lease
// LeaseName in Namespace; PolicyReports written per namespace.
type AuditOptions struct {
	Interval      time.Duration
	LeaseName     string
	LeaseDuration time.Duration
	// Identity is this replica in the Lease (default: $POD_NAME, else the
	// host name).
	Identity string
	// RegistryQPS and RegistryBurst bound the registry lookups a scan's
	// cache misses make (token bucket); admission is never throttled.
	RegistryQPS   float64
	RegistryBurst int
}

// Server is one running `signgate serve`.
type Server struct {
	log      *slog.Logger
	certs    *certReloader
	policies policy.Source
	webhook  *http.Server
	metrics  *http.Server
	stop     []func() // close watchers and informers

	webhookLn, metricsLn net.Listener

	shutdownDelay time.Duration
	draining      atomic.Bool // SIGTERM received: /readyz fails
	conns         connStates  // of the webhook server
}

// New builds everything that can fail on bad input (certificate,
// configuration, policies) before any port is opened. Close releases what
// it started.
func New(ctx context.Context, o Options, log *slog.Logger) (*Server, error) {
	s := &Server{log: log, shutdownDelay: o.ShutdownDelay}
	certs, err := newCertReloader(o.CertFile, o.KeyFile, log)
	if err != nil {
		return nil, err
	}
	s.certs = certs
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	expiry := certExpiryCollector{serving: certs.notAfter}
	if o.ClientCAFile != "" {
		cas, err := newClientCAReloader(o.ClientCAFile, log)
		if err != nil {
			return nil, err
		}
		cas.configure(tlsConfig)
		expiry.clientCA = cas.expiry
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(o.Version), expiry)
	metrics, err := admission.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	cfg, err := s.watchConfig(ctx, o.ConfigFile, metrics)
	if err != nil {
		s.Close()
		return nil, err
	}
	v, err := newVerifier(cfg.Current(), metrics)
	if err != nil {
		s.Close()
		return nil, err
	}
	// Each compilation of the policies names the registry hosts that
	// label registry request latency.
	onCompile := func(sum policy.Summary) { metrics.SetRegistryHosts(sum.Hosts) }
	if s.policies, err = s.policySource(ctx, o, onCompile); err != nil {
		s.Close()
		return nil, err
	}
	if ts, ok := s.policies.(trustRootStatuser); ok {
		reg.MustRegister(newTrustRootCollector(ts.TrustRootStatus))
	}
	if ps, ok := s.policies.(summarizer); ok {
		reg.MustRegister(policiesCollector{summary: ps.Summary})
	}
	gopts := admission.Options{Verifier: v, Policies: s.policies, Config: cfg, Namespace: o.Namespace}
	if o.PodPullSecrets {
		if gopts.Credentials, err = podPullSecrets(o); err != nil {
			s.Close()
			return nil, err
		}
	}
	gate, err := admission.NewGate(gopts)
	if err != nil {
		s.Close()
		return nil, err
	}
	if o.Audit.Interval > 0 {
		if err := s.startAudit(ctx, o, gopts, v, reg); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.webhook = &http.Server{
		Addr:              o.Listen,
		Handler:           admission.NewMux(gate, admission.HandlerOptions{Logger: log, Metrics: metrics}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      ShutdownGrace + 5*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         s.conns.track,
	}
	s.metrics = &http.Server{
		Addr:              o.MetricsListen,
		Handler:           s.metricsMux(reg, o.Profiling),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Listen opens both ports.
func (s *Server) Listen() error {
	var err error
	if s.webhookLn, err = net.Listen("tcp", s.webhook.Addr); err != nil {
		return fmt.Errorf("listen %s: %w", s.webhook.Addr, err)
	}
	if s.metricsLn, err = net.Listen("tcp", s.metrics.Addr); err != nil {
		s.webhookLn.Close()
		return fmt.Errorf("listen %s: %w", s.metrics.Addr, err)
	}
	return nil
}

// WebhookAddr is the address the webhook port listens on, after Listen.
func (s *Server) WebhookAddr() net.Addr { return s.webhookLn.Addr() }

// MetricsAddr is the address the metrics port listens on, after Listen.
func (s *Server) MetricsAddr() net.Addr { return s.metricsLn.Addr() }

// Close stops the configuration watcher and the policy source.
func (s *Server) Close() {
	for _, f := range s.stop {
		f()
	}
	s.stop = nil
}

// goRun runs fn until the server closes.
func (s *Server) goRun(ctx context.Context, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	s.stop = append(s.stop, func() { cancel(); <-done })
}
