package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsMux is the plain-HTTP metrics port: /healthz, /readyz, /metrics,
// and with profiling net/http/pprof's /debug/pprof/ (registered here
// explicitly: this is not http.DefaultServeMux, and the webhook port never
// has them).
func (s *Server) metricsMux(reg *prometheus.Registry, profiling bool) *http.ServeMux {
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
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// ready: certificate loaded and policy caches synced. Registry health is
// deliberately not part of it: an unready gate is taken out of service,
// and a registry outage must give "retry" denials, not no answer.
func (s *Server) ready() error {
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
