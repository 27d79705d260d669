//go:build e2e

package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Signgate is `signgate serve` on loopback: webhooks over HTTPS with a
// certificate from the environment's CA, metrics over plain HTTP.
type Signgate struct {
	URL        string // https://127.0.0.1:PORT, the webhook base URL
	MetricsURL string // http://127.0.0.1:PORT
	ConfigPath string // the GateConfiguration file it reads (hot-reloaded)
	Proc       *Process
}

// SigngateOptions says how to start signgate serve.
type SigngateOptions struct {
	Bin        string // bin/signgate
	Kubeconfig string // policies and namespaces come from this API server
	Config     []byte // GateConfiguration YAML
	ExtraArgs  []string
}

// GateConfig is the GateConfiguration the harness gives signgate: the
// defaults of docs/policies.md, plus the loopback registries the suite pushes to,
// which are plain HTTP (insecureRegistries) and on 127.0.0.1, a network the
// gate refuses unless allow-listed (allowedHosts). The registry timeout is
// not the default 5s: a loopback registry on a loaded machine can be slower
// than that, and the gate would then deny with "retry". 20s lies inside
// the gate's own deadline for the harness's 30s webhook timeout (24s).
// Nothing in the suite relies on a registry timing out: an outage is a
// stopped registry, refused at once. Namespace ImagePolicies cover images
// (policies.namespacePoliciesCoverImages): the suite's tests are namespace
// owners trusting their keys; the default, where only ClusterImagePolicies
// cover images, is tested in cmd/signgate (TestServeNamespacePoliciesOnlyAdd).
func GateConfig(registries ...string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n")
	b.WriteString("unmatchedImages: deny\nexemptNamespaces: [kube-system]\n")
	b.WriteString("policies:\n  namespacePoliciesCoverImages: true\n")
	b.WriteString("registry:\n  timeout: 20s\n")
	for _, field := range []string{"insecureRegistries", "allowedHosts"} {
		fmt.Fprintf(&b, "  %s:\n", field)
		for _, r := range registries {
			fmt.Fprintf(&b, "    - %q\n", r)
		}
	}
	return []byte(b.String())
}

// StartSigngate starts `signgate serve` and waits until /readyz answers
// (certificates loaded, informer caches synced).
func StartSigngate(ctx context.Context, tb TB, dir string, ca *CA, opts SigngateOptions) (*Signgate, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := ca.WriteServingPair(dir, "signgate")
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "gate-config.yaml")
	if err := os.WriteFile(config, opts.Config, 0o644); err != nil {
		return nil, fmt.Errorf("start signgate: %w", err)
	}
	args := append([]string{"serve",
		"--listen=" + listen,
		"--tls-cert-file=" + certFile,
		"--tls-key-file=" + keyFile,
		"--kubeconfig=" + opts.Kubeconfig,
		"--config=" + config,
		"--metrics-listen=" + metrics,
		"--log-format=text",
	}, opts.ExtraArgs...)
	p, err := startProcess(tb, dir, procSpec{name: "signgate", bin: opts.Bin, args: args, grace: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	s := &Signgate{URL: "https://" + listen, MetricsURL: "http://" + metrics, ConfigPath: config, Proc: p}
	err = p.waitReady(ctx, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, s.MetricsURL+"/readyz", "")
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
