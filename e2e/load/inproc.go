//go:build load

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// inprocCommand is the first argument that turns this program into the
// profiled server: the wiring of `signgate serve` (cmd/signgate/serve.go:
// configuration watcher, verifier, --policy-dir source, gate, handlers with
// logger and metrics) plus net/http/pprof on the metrics port, which serve
// does not expose. It runs as its own process, so its CPU and allocation
// profiles hold the server's work only, not the load generator's.
const inprocCommand = "serve-inproc"

func serveInProcess(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(inprocCommand, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "webhook HTTPS address")
	metricsListen := fs.String("metrics-listen", "127.0.0.1:0", "readyz and pprof address")
	certFile := fs.String("tls-cert-file", "", "TLS certificate")
	keyFile := fs.String("tls-key-file", "", "TLS key")
	configFile := fs.String("config", "", "GateConfiguration")
	policyDir := fs.String("policy-dir", "", "policies and namespaces")
	fs.String("log-format", "json", "accepted for serve's flags; always json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	const gateNamespace = "signgate-system"
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	metrics, err := admission.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		return err
	}
	cfgw, err := policy.NewConfigWatcher(*configFile, policy.ConfigWatcherOptions{})
	if err != nil {
		return err
	}
	go func() { _ = cfgw.Run(ctx) }()
	cfg := cfgw.Current()
	v, err := verifier.New(verifier.Options{
		Timeout:            cfg.Registry.Timeout,
		InsecureRegistries: cfg.Registry.InsecureRegistries,
		AllowedHosts:       cfg.Registry.AllowedHosts,
		BlockedNetworks:    cfg.Registry.BlockedPrefixes(),
		MaxManifestBytes:   cfg.Registry.MaxManifestBytes,
		CacheSize:          cfg.Cache.MaxEntries,
		TTL:                cfg.Cache.TTL,
		FailureTTL:         cfg.Cache.FailureTTL,
		TagTTL:             cfg.Cache.TagTTL,
		Observer:           metrics,
	})
	if err != nil {
		return err
	}
	src, err := policy.NewFileSource(*policyDir, policy.FileOptions{GateNamespace: gateNamespace, Logger: log})
	if err != nil {
		return err
	}
	go src.Run(ctx)
	gate, err := admission.NewGate(admission.Options{Verifier: v, Policies: src, Config: cfgw, Namespace: gateNamespace})
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	webhook := &http.Server{
		Handler:           admission.NewMux(gate, admission.HandlerOptions{Logger: log, Metrics: metrics}),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second, // the timeouts of serve
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      35 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !src.Ready() {
			http.Error(w, "policies not synced", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	diag := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	wl, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ml, err := net.Listen("tcp", *metricsListen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- webhook.ServeTLS(wl, "", "") }()
	go func() { errc <- diag.Serve(ml) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	webhook.Close()
	diag.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", inprocCommand, err)
	}
	return nil
}
