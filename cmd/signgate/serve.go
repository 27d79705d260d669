package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/signgate/signgate/internal/server"
)

// newServeCmd is `signgate serve`.
func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --tls-cert-file FILE --tls-key-file FILE [flags]",
		Short: "Run the mutating and validating admission webhooks",
		Long: `Runs the mutating (/mutate) and validating (/validate) admission webhooks
over HTTPS, and /healthz, /readyz and /metrics (with --profiling also
/debug/pprof/) over plain HTTP. The TLS pair, the client CAs and the
GateConfiguration are re-read when they change.
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
	cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// serve runs the server until ctx is done: exit 2 for bad configuration,
// 1 when a port cannot be opened or serving fails.
func serve(ctx context.Context, o serveOptions, stderr io.Writer) error {
	level := logLevels[o.LogLevel]
	log := newLogger(o.LogFormat, level, stderr)
	defer routeLibraryLogs(log, level)()
	applyMemoryLimit(log)
	o.Version = versionString() // signgate_build_info
	s, err := server.New(ctx, o.Options, log)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	defer s.Close()
	if err := s.Listen(); err != nil {
		return exitWith(exitDenied, err)
	}
	if err := s.Run(ctx); err != nil {
		return exitWith(exitDenied, err)
	}
	return nil
}

// newLogger is serve's logger: format json or text, records at level and
// above.
func newLogger(format string, level slog.Level, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
