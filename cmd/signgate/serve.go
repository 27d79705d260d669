package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// serveOptions are the flags of `signgate serve` (`signgate serve --help`; docs/cli.md, docs/helm.md).
type serveOptions struct {
	Listen        string // webhook HTTPS address
	CertFile      string // TLS certificate, re-read when it changes
	KeyFile       string // TLS key, re-read when it changes
	ClientCAFile  string // CAs a webhook client's certificate must chain to, re-read when it changes; "": no client certificate required
	ConfigFile    string // GateConfiguration; default: built-in defaults
	Kubeconfig    string // default: $KUBECONFIG, ~/.kube/config, in-cluster
	PolicyDir     string // policies, Namespaces, Secrets from files instead of a cluster
	MetricsListen string // plain HTTP: /healthz, /readyz, /metrics
	LogFormat     string // json | text
	Namespace     string // the gate's own namespace, always exempt
	// ShutdownDelay: after SIGTERM, keep serving this long (unready, no
	// keep-alives) before closing the port, so the API server stops
	// sending here before connections are refused.
	ShutdownDelay time.Duration
}

// shutdownGrace bounds how long in-flight reviews may take after SIGTERM:
// the API server's longest webhook timeout.
const shutdownGrace = 30 * time.Second

// newServeCmd is `signgate serve`.
func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --tls-cert-file FILE --tls-key-file FILE [flags]",
		Short: "Run the mutating and validating admission webhooks",
		Long: `Runs the mutating (/mutate) and validating (/validate) admission webhooks
over HTTPS, and /healthz, /readyz and /metrics over plain HTTP. The TLS
pair, the client CAs and the GateConfiguration are re-read when they change.
Policies, Namespaces and registry Secrets come from the cluster (--kubeconfig,
$KUBECONFIG, ~/.kube/config, else the in-cluster configuration) or from
--policy-dir.

Exit codes: 0 stopped cleanly (SIGTERM); 1 a port could not be opened or
serving failed; 2 usage or configuration error.`,
		Example: `  signgate serve --tls-cert-file tls.crt --tls-key-file tls.key --policy-dir policies/ --log-format text
  signgate serve --tls-cert-file /tls/tls.crt --tls-key-file /tls/tls.key --config /config/config.yaml --kubeconfig ~/.kube/config`,
		Args: noArgs("serve takes only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return serve(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	o.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("tls-cert-file")
	cmd.MarkFlagFilename("tls-key-file")
	cmd.MarkFlagFilename("client-ca-file")
	cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.MarkFlagFilename("kubeconfig")
	cmd.MarkFlagDirname("policy-dir")
	cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"json", "text"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o *serveOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", ":8443", "`ADDR` of the HTTPS webhook endpoints /mutate and /validate")
	fs.StringVar(&o.CertFile, "tls-cert-file", "", "TLS certificate `FILE` (PEM), re-read when it changes (required)")
	fs.StringVar(&o.KeyFile, "tls-key-file", "", "TLS private key `FILE` (PEM), re-read when it changes (required)")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", "", "require on the webhook port a TLS client certificate signed by a CA in `FILE` (PEM), re-read when it changes; "+
		"a connection without one fails the handshake. kube-apiserver presents one when its AdmissionConfiguration names a kubeconfig for the webhook. "+
		"The metrics port is not affected (default: no client certificate required)")
	configFlag(fs, &o.ConfigFile, ", reloaded when it changes")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster configuration)")
	policyDirFlag(fs, &o.PolicyDir, " (watched)")
	fs.StringVar(&o.MetricsListen, "metrics-listen", ":9090", "`ADDR` of the plain-HTTP /healthz, /readyz and /metrics endpoints")
	fs.StringVar(&o.LogFormat, "log-format", "json", "log `FORMAT`: json or text")
	fs.StringVarP(&o.Namespace, "namespace", "n", defaultNamespace(), "the gate's own `NAMESPACE`, never evaluated; $POD_NAMESPACE when set")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 0, "after SIGTERM, keep answering for `DURATION` with /readyz failing and keep-alives off before the port closes, while Service endpoints update (in a cluster: 5s)")
}

func (o *serveOptions) validate() error {
	switch {
	case o.CertFile == "" || o.KeyFile == "":
		return errors.New("--tls-cert-file and --tls-key-file are required")
	case o.LogFormat != "json" && o.LogFormat != "text":
		return fmt.Errorf("--log-format must be json or text, not %q", o.LogFormat)
	case o.Namespace == "":
		return errors.New("--namespace must not be empty")
	case o.ShutdownDelay < 0 || o.ShutdownDelay > time.Minute:
		return fmt.Errorf("--shutdown-delay must be between 0s and 1m, not %s", o.ShutdownDelay)
	}
	return nil
}

// serve runs the server until ctx is done: exit 2 for bad configuration,
// 1 when a port cannot be opened or serving fails.
func serve(ctx context.Context, o serveOptions, stderr io.Writer) error {
	log := newLogger(o.LogFormat, stderr)
	applyMemoryLimit(log)
	s, err := newServer(ctx, o, log)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	defer s.close()
	if err := s.listen(); err != nil {
		return exitWith(exitDenied, err)
	}
	if err := s.run(ctx); err != nil {
		return exitWith(exitDenied, err)
	}
	return nil
}

func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "signgate-system"
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// server is one running `signgate serve`.
type server struct {
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

// newServer builds everything that can fail on bad input (certificate,
// configuration, policies) before any port is opened.
func newServer(ctx context.Context, o serveOptions, log *slog.Logger) (*server, error) {
	s := &server{log: log, shutdownDelay: o.ShutdownDelay}
	certs, err := newCertReloader(o.CertFile, o.KeyFile, log)
	if err != nil {
		return nil, err
	}
	s.certs = certs
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	if o.ClientCAFile != "" {
		cas, err := newClientCAReloader(o.ClientCAFile, log)
		if err != nil {
			return nil, err
		}
		cas.configure(tlsConfig)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := admission.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	cfg, err := s.watchConfig(ctx, o.ConfigFile, metrics)
	if err != nil {
		s.close()
		return nil, err
	}
	v, err := newVerifier(cfg.Current(), metrics)
	if err != nil {
		s.close()
		return nil, err
	}
	if s.policies, err = s.policySource(ctx, o, metrics); err != nil {
		s.close()
		return nil, err
	}
	gate, err := admission.NewGate(admission.Options{Verifier: v, Policies: s.policies, Config: cfg, Namespace: o.Namespace})
	if err != nil {
		s.close()
		return nil, err
	}
	s.webhook = &http.Server{
		Addr:              o.Listen,
		Handler:           admission.NewMux(gate, admission.HandlerOptions{Logger: log, Metrics: metrics}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      shutdownGrace + 5*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         s.conns.track,
	}
	s.metrics = &http.Server{
		Addr:              o.MetricsListen,
		Handler:           s.metricsMux(reg),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// newVerifier builds the verifier from the configuration at start. Cache
// and registry settings apply from start; a reload changes policies and
// decisions, not these.
func newVerifier(cfg *policy.Config, m *admission.Metrics) (*verifier.Verifier, error) {
	o := verifierOptions(cfg)
	o.Observer = m
	return verifier.New(o)
}

func (s *server) metricsMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// ready: certificate loaded and policy caches synced. Registry health is
// deliberately not part of it: an unready gate is taken out of service,
// and a registry outage must give "retry" denials, not no answer.
func (s *server) ready() error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if !s.certs.loaded() {
		return errors.New("TLS certificate not loaded")
	}
	if !s.policies.Ready() {
		return errors.New("policies not synced")
	}
	return nil
}

// listen opens both ports.
func (s *server) listen() error {
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

// run serves until ctx ends (SIGTERM), then stops accepting, lets
// in-flight reviews finish (up to shutdownGrace) and returns nil.
func (s *server) run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.webhook.ServeTLS(s.webhookLn, "", "") }()
	go func() { errc <- s.metrics.Serve(s.metricsLn) }()
	s.log.Info("serving", "webhook", s.webhookLn.Addr().String(), "metrics", s.metricsLn.Addr().String())
	var err error
	select {
	case <-ctx.Done():
		err = s.drain(errc)
		s.log.Info("shutting down: finishing in-flight reviews")
		s.stopAccepting()
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range []*http.Server{s.webhook, s.metrics} {
		wg.Go(func() {
			if e := srv.Shutdown(sctx); e != nil {
				s.log.Warn("shutdown", "addr", srv.Addr, "err", e)
			}
		})
	}
	wg.Wait()
	s.log.Info("stopped")
	return err
}

// stopAccepting closes the webhook port and waits until every connection
// already accepted has had its first request read (or has closed, at the
// latest after ReadHeaderTimeout): Go's http.Server drops, unanswered, a
// request it finishes reading after Shutdown has begun, so calling
// Shutdown with a just-accepted connection could leave a review the API
// server sent without an answer.
func (s *server) stopAccepting() {
	if err := s.webhookLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("close webhook listener", "err", err)
	}
	deadline := time.Now().Add(s.webhook.ReadHeaderTimeout)
	for s.conns.fresh() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// connStates counts the webhook's connections that have not yet begun a
// request (http.StateNew). Used as http.Server.ConnState.
type connStates struct {
	mu  sync.Mutex
	new map[net.Conn]struct{}
}

func (c *connStates) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == http.StateNew {
		if c.new == nil {
			c.new = make(map[net.Conn]struct{})
		}
		c.new[conn] = struct{}{}
		return
	}
	delete(c.new, conn)
}

func (c *connStates) fresh() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.new)
}

// drain is the first step of a shutdown: /readyz fails at once, and for
// --shutdown-delay the gate still answers every review, closing each
// connection after its answer, while the endpoints of its Service are
// updated; only then does run close the port. Without the delay the API
// server may still pick this replica for a moment and find the port
// closed: with failurePolicy Fail that is a denied pod.
func (s *server) drain(errc <-chan error) error {
	s.draining.Store(true)
	if s.shutdownDelay <= 0 {
		return nil
	}
	s.log.Info("shutting down: unready, still answering", "shutdownDelay", s.shutdownDelay)
	s.webhook.SetKeepAlivesEnabled(false)
	select {
	case <-time.After(s.shutdownDelay):
		return nil
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
}

func (s *server) close() {
	for _, f := range s.stop {
		f()
	}
	s.stop = nil
}

// certReloader serves the certificate from files, re-reading them when
// their modification time or size changes (cert-manager and kubelet
// rewrite Secret volumes in place). A bad pair keeps the last good one.
// Safe for concurrent use.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp string // mtimes and sizes of the files last read
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate: one stat per file per
// handshake, a read only when they changed.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if err := c.reload(); err != nil {
		c.log.Warn("TLS certificate reload failed, keeping the previous one", "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil {
		return nil, errors.New("no TLS certificate loaded")
	}
	return c.cert, nil
}

func (c *certReloader) loaded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert != nil
}

// reload reads the pair if the files changed since the last attempt.
func (c *certReloader) reload() error {
	stamp, err := fileStamp(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp == c.stamp {
		return nil
	}
	c.stamp = stamp // a half-written pair is retried when the next file changes
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if c.cert != nil {
		c.log.Info("TLS certificate reloaded", "file", c.certFile)
	}
	c.cert = &cert
	return nil
}

func fileStamp(files ...string) (string, error) {
	stamp := ""
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("stat TLS file: %w", err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", f, fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

// watchConfig loads --config (or the defaults) and follows changes: a bad
// reload keeps the last good configuration, logs and counts it.
func (s *server) watchConfig(ctx context.Context, file string, m *admission.Metrics) (admission.ConfigSource, error) {
	if file == "" {
		return admission.StaticConfig{Config: policy.DefaultConfig()}, nil
	}
	w, err := policy.NewConfigWatcher(file, policy.ConfigWatcherOptions{OnReload: func(err error) {
		if err != nil {
			m.ConfigReload("failure")
			s.log.Error("configuration not reloaded", "file", file, "err", err)
			return
		}
		m.ConfigReload("success")
		s.log.Info("configuration reloaded", "file", file)
	}})
	if err != nil {
		return nil, err
	}
	s.goRun(ctx, func(ctx context.Context) { _ = w.Run(ctx) })
	return w, nil
}

// policySource loads policies from --policy-dir, or from the cluster.
func (s *server) policySource(ctx context.Context, o serveOptions, _ *admission.Metrics) (policy.Source, error) {
	if o.PolicyDir == "" {
		return s.clusterSource(ctx, o)
	}
	src, err := policy.NewFileSource(o.PolicyDir, policy.FileOptions{GateNamespace: o.Namespace, Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.goRun(ctx, src.Run)
	return src, nil
}

// goRun runs fn until the server closes.
func (s *server) goRun(ctx context.Context, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	s.stop = append(s.stop, func() { cancel(); <-done })
}

// clusterSource follows policies and namespaces in the cluster through
// informers; /readyz stays false until their caches have synced.
func (s *server) clusterSource(ctx context.Context, o serveOptions) (policy.Source, error) {
	rc, err := restConfig(o.Kubeconfig, "")
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	src, err := policy.NewClusterSource(dyn, kube, o.Namespace, policy.ClusterOptions{Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.goRun(ctx, func(ctx context.Context) {
		if err := src.Run(ctx); err != nil {
			s.log.Error("policy informers stopped", "err", err)
		}
	})
	return src, nil
}

// restConfig loads the cluster configuration the way kubectl does:
// --kubeconfig, else $KUBECONFIG (a list of files), else ~/.kube/config,
// and the in-cluster configuration when none of them exists.
func restConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err):
		return nil, errors.New("no kubeconfig ($KUBECONFIG, ~/.kube/config) and no in-cluster configuration: outside a cluster, use --kubeconfig or --policy-dir")
	case err != nil && kubeconfig != "":
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	case err != nil:
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	// client-go's default (5 QPS, burst 10) queues the Secret reads of many
	// policies behind each other; 50/100 is what controllers of this kind use.
	if rc.QPS == 0 && rc.Burst == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	return rc, nil
}
