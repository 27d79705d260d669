//go:build load

package main

import (
	"context"
	"flag"
	"log/slog"
	"os"

	sgserver "github.com/signgate/signgate/internal/server" // this package has its own type server
)

// inprocCommand is the first argument that turns this program into a
// signgate server (-signgate serve-inproc, for a run without bin/signgate):
// internal/server, the server `signgate serve` runs, built from the subset
// of serve's flags startSigngate passes, with --profiling always on. It runs
// as its own process, so its profiles hold the server's work only, not the
// load generator's.
const inprocCommand = "serve-inproc"

func serveInProcess(ctx context.Context, args []string) error {
	o := sgserver.Options{Namespace: "signgate-system", Profiling: true}
	fs := flag.NewFlagSet(inprocCommand, flag.ContinueOnError)
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:0", "webhook HTTPS address")
	fs.StringVar(&o.MetricsListen, "metrics-listen", "127.0.0.1:0", "metrics, readyz and pprof address")
	fs.StringVar(&o.CertFile, "tls-cert-file", "", "TLS certificate")
	fs.StringVar(&o.KeyFile, "tls-key-file", "", "TLS key")
	fs.StringVar(&o.ConfigFile, "config", "", "GateConfiguration")
	fs.StringVar(&o.PolicyDir, "policy-dir", "", "policies and namespaces")
	fs.Bool("profiling", true, "accepted for serve's flags; always on")
	fs.String("log-format", "json", "accepted for serve's flags; always json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := sgserver.New(ctx, o, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Run(ctx)
}
