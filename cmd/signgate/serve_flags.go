package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/signgate/signgate/internal/server"
)

// serveOptions are the flags of `signgate serve` (`signgate serve --help`;
// docs/cli.md, docs/helm.md): the server's options, the log format and the
// log level.
type serveOptions struct {
	server.Options
	LogFormat string // json | text
	LogLevel  string // debug | info | warn | error (logLevels)
}

// logLevels are the values of --log-level.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
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
	fs.BoolVar(&o.Profiling, "profiling", false, "also serve net/http/pprof's /debug/pprof/ on the metrics port (never on the webhook port)")
	fs.BoolVar(&o.PodPullSecrets, "pod-pull-secrets", false, "read registries for each review with the pod's imagePullSecrets and its service account's (from the pod's namespace; needs get on Secrets and ServiceAccounts cluster-wide), ahead of the gate's own credentials")
	fs.StringVar(&o.LogFormat, "log-format", "json", "log `FORMAT`: json or text")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log records at `LEVEL` and above: debug, info, warn or error; client-go's (klog's) lines included, "+
		"at klog verbosity 4 with debug, else 0")
	fs.StringVarP(&o.Namespace, "namespace", "n", defaultNamespace(), "the gate's own `NAMESPACE`, never evaluated; $POD_NAMESPACE when set")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 0, "after SIGTERM, keep answering for `DURATION` with /readyz failing and keep-alives off before the port closes, while Service endpoints update (in a cluster: 5s)")
	fs.DurationVar(&o.Audit.Interval, "audit-interval", 0, "background audit: re-decide the running pods and workload templates every `DURATION` and after every policy change, and write PolicyReports (wgpolicyk8s.io/v1alpha2); one replica at a time (--audit-lease-name). 0: off")
	fs.StringVar(&o.Audit.LeaseName, "audit-lease-name", "signgate-audit", "`NAME` of the coordination.k8s.io Lease in --namespace that replicas hold to run the background audit")
	fs.Float64Var(&o.Audit.RegistryQPS, "audit-registry-qps", 5, "background audit: at most `N` registry lookups per second for what the caches cannot answer (admission is never throttled)")
	fs.IntVar(&o.Audit.RegistryBurst, "audit-registry-burst", 10, "background audit: bursts of up to `N` registry lookups above --audit-registry-qps")
	fs.StringVar(&o.Audit.Identity, "audit-identity", "", "this replica's `NAME` in the audit Lease (default: $POD_NAME, else the host name)")
	fs.DurationVar(&o.Audit.LeaseDuration, "audit-lease-duration", 15*time.Second, "how long the audit Lease holds without renewal: a stopped holder is replaced within `DURATION`")
}

func (o *serveOptions) validate() error {
	switch {
	case o.CertFile == "" || o.KeyFile == "":
		return errors.New("--tls-cert-file and --tls-key-file are required")
	case o.LogFormat != "json" && o.LogFormat != "text":
		return fmt.Errorf("--log-format must be json or text, not %q", o.LogFormat)
	case !validLogLevel(o.LogLevel):
		return fmt.Errorf("--log-level must be debug, info, warn or error, not %q", o.LogLevel)
	case o.Namespace == "":
		return errors.New("--namespace must not be empty")
	case o.ShutdownDelay < 0 || o.ShutdownDelay > time.Minute:
		return fmt.Errorf("--shutdown-delay must be between 0s and 1m, not %s", o.ShutdownDelay)
	case o.Audit.Interval < 0:
		return fmt.Errorf("--audit-interval must not be negative, not %s", o.Audit.Interval)
	case o.Audit.Interval > 0 && o.Audit.Interval < time.Second:
		return fmt.Errorf("--audit-interval %s: want at least 1s (0 turns the background audit off)", o.Audit.Interval)
	case o.Audit.Interval > 0 && o.PolicyDir != "":
		return errors.New("--audit-interval needs a cluster to list workloads in and write PolicyReports to; it cannot be used with --policy-dir")
	case o.Audit.Interval > 0 && o.Audit.LeaseName == "":
		return errors.New("--audit-lease-name must not be empty")
	case o.Audit.Interval > 0 && (o.Audit.RegistryQPS <= 0 || o.Audit.RegistryBurst <= 0):
		return fmt.Errorf("--audit-registry-qps (%g) and --audit-registry-burst (%d) must be positive", o.Audit.RegistryQPS, o.Audit.RegistryBurst)
	case o.Audit.Interval > 0 && o.Audit.LeaseDuration < time.Second:
		return fmt.Errorf("--audit-lease-duration %s: want at least 1s", o.Audit.LeaseDuration)
	}
	return nil
}

func validLogLevel(s string) bool {
	_, ok := logLevels[s]
	return ok
}

func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "signgate-system"
}
