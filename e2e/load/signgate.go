//go:build load

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// gateSettings vary between the signgate servers of one run.
type gateSettings struct {
	Name    string
	NoCache bool // verdict and tag caches reduced to nothing: every review verifies
	InProc  bool // this program's serve-inproc (internal/server, as serve runs it) instead of bin/signgate
}

// gateConfig is the GateConfiguration of the load run: restricted Pod
// Security everywhere, two hardening checks on (the recorded pods pass
// them), the loopback registry reachable over plain HTTP (and allowed,
// although loopback is blocked by default).
func gateConfig(registryHost string, s gateSettings) string {
	cache := "cache: {maxEntries: 10000, ttl: 10m, failureTTL: 30s, tagTTL: 15s}"
	if s.NoCache {
		// policy/config.go accepts only positive values (no "off"), so the
		// verdict LRU gets one entry: with the no-cache workload's 192
		// distinct digests it never holds the next digest asked for.
		// Concurrent misses for one digest would still share a
		// verification (singleflight), so that workload never has two
		// reviews of the same digest in flight.
		cache = "cache: {maxEntries: 1, tagTTL: 100ms}"
	}
	return fmt.Sprintf(`apiVersion: signgate.dev/v1alpha1
kind: GateConfiguration
unmatchedImages: deny
exemptNamespaces: [kube-system]
podSecurity:
  defaults: {enforce: restricted, enforce-version: latest, warn: restricted, warn-version: latest, audit: restricted, audit-version: latest}
  workloads: enforce
hardening:
  - check: readOnlyRootFilesystem
    mode: enforce
  - check: resourceLimits
    mode: enforce
%s
registry:
  timeout: 5s
  insecureRegistries: [%q]
  allowedHosts: [%q]
`, cache, registryHost, registryHost)
}

// policyFiles are the --policy-dir contents: the namespace with PSA's
// labels and one ClusterImagePolicy trusting the run's cosign key for every
// image in the loopback registry.
func policyFiles(namespace, registryHost string, pubPEM []byte) map[string]string {
	var key strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(pubPEM)), "\n") {
		key.WriteString("          " + line + "\n")
	}
	return map[string]string{
		"namespace.yaml": fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
`, namespace),
		"policy.yaml": fmt.Sprintf(`apiVersion: signgate.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: load
spec:
  images:
    - glob: "%s/**"
  mode: enforce
  authorities:
    - name: load-key
      key:
        data: |
%s`, registryHost, key.String()),
	}
}

// startSigngate runs `signgate serve` reading policies from a directory,
// with --profiling: /debug/pprof/ on the metrics port (the profile section).
func startSigngate(ctx context.Context, bin, dir string, reg *testRegistry, namespace string, tls *serving, s gateSettings) (*server, error) {
	sdir := filepath.Join(dir, s.Name)
	pdir := filepath.Join(sdir, "policies")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return nil, err
	}
	for name, body := range policyFiles(namespace, reg.Host, reg.PubPEM) {
		if err := os.WriteFile(filepath.Join(pdir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	config := filepath.Join(sdir, "config.yaml")
	if err := os.WriteFile(config, []byte(gateConfig(reg.Host, s)), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	command := "serve"
	if s.InProc {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
		command = inprocCommand
	}
	srv, err := startServer(ctx, s.Name, dir, bin, []string{command,
		"--listen", hostPort(port),
		"--tls-cert-file", tls.CertFile, "--tls-key-file", tls.KeyFile,
		"--config", config, "--policy-dir", pdir,
		"--metrics-listen", hostPort(mport), "--log-format", "json", "--profiling",
	}, fmt.Sprintf("http://%s/readyz", hostPort(mport)), tls.clientTLS())
	if err != nil {
		return nil, err
	}
	srv.URL = "https://" + hostPort(port)
	srv.MetricsURL = "http://" + hostPort(mport)
	return srv, nil
}
