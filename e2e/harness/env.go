//go:build e2e

package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Options says what Start brings up. The zero value is the standard
// environment: one registry and signgate with GateConfig.
type Options struct {
	// Registries is how many independent registries to start; default 1.
	// A test that stops a registry should stop one nobody else uses.
	Registries int
	// GateConfig builds signgate's GateConfiguration from the registry
	// hosts; default GateConfig.
	GateConfig func(registries []string) []byte
	// PrivateRegistry adds Env.Private, a registry that requires a user
	// and password on every request (StartPrivateRegistry); its host is
	// in the gate's configuration like the others'.
	PrivateRegistry bool
	// PodPullSecrets runs signgate with --pod-pull-secrets.
	PodPullSecrets bool
}

// Env is one running environment: etcd, kube-apiserver with the signgate
// CRDs, registries, signgate serve and the webhook configurations.
//
// Start runs the steps in order; a caller that needs a different shape
// (for example rendered chart manifests instead of the harness's own
// webhook configurations) calls StartCluster and then the steps it wants.
type Env struct {
	Root       string // repository root
	Dir        string // the environment's temp dir: component logs, certs, kubeconfig
	Bin        Binaries
	CA         *CA
	Etcd       *Etcd
	APIServer  *APIServer
	Registries []*Registry
	Private    *Registry // Options.PrivateRegistry; nil otherwise
	Cosign     *Cosign   // cosign v2 (bin/cosign)
	Cosign3    *Cosign   // cosign v3 (bin/cosign3)
	Signgate   *Signgate

	Config  *rest.Config // admin; copy before changing (rest.CopyConfig)
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	tb TB
}

// Start brings up the full environment and returns once signgate answers
// admission requests through the API server. Everything started is
// registered with tb for teardown, also when Start fails half way.
func Start(ctx context.Context, tb TB, opts Options) (*Env, error) {
	e, err := StartCluster(ctx, tb)
	if err != nil {
		return nil, err
	}
	n := max(opts.Registries, 1)
	hosts := make([]string, 0, n)
	for i := range n {
		r, err := e.StartRegistry(ctx, "registry-"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, r.Host)
	}
	if opts.PrivateRegistry {
		pass, err := randomPassword()
		if err != nil {
			return nil, err
		}
		if e.Private, err = StartPrivateRegistry(ctx, tb, e.Bin.Registry, e.Dir, "registry-private", "e2e", pass); err != nil {
			return nil, err
		}
		hosts = append(hosts, e.Private.Host)
	}
	if err := e.InstallCRDs(ctx, filepath.Join(e.Root, "charts", "signgate", "templates", "crds")); err != nil {
		return nil, err
	}
	gc := GateConfig
	if opts.GateConfig != nil {
		gc = func(h ...string) []byte { return opts.GateConfig(h) }
	}
	sopts := SigngateOptions{Config: gc(hosts...)}
	if opts.PodPullSecrets {
		sopts.ExtraArgs = append(sopts.ExtraArgs, "--pod-pull-secrets")
	}
	if err := e.StartSigngate(ctx, sopts); err != nil {
		return nil, err
	}
	if err := e.RegisterWebhooks(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// StartCluster finds the binaries and starts etcd and kube-apiserver; the
// returned Env has clients but no registry, CRDs or signgate yet.
func StartCluster(ctx context.Context, tb TB) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	bins, err := FindBinaries(root)
	if err != nil {
		return nil, err
	}
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	dir := tb.TempDir()
	e := &Env{Root: root, Dir: dir, Bin: bins, CA: ca, Cosign: NewCosign(bins.Cosign, dir),
		Cosign3: NewCosign(bins.Cosign3, filepath.Join(dir, "cosign3")), tb: tb}

	t0 := time.Now()
	if e.Etcd, err = StartEtcd(ctx, tb, bins.Etcd, dir); err != nil {
		return nil, err
	}
	tb.Logf("etcd ready at %s (%s)", e.Etcd.URL, time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	if e.APIServer, err = StartAPIServer(ctx, tb, bins.KubeAPIServer, dir, e.Etcd.URL, ca); err != nil {
		return nil, err
	}
	tb.Logf("kube-apiserver ready at %s (%s)", e.APIServer.URL, time.Since(t0).Round(time.Millisecond))

	e.Config = e.APIServer.RESTConfig()
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	if e.Dynamic, err = dynamic.NewForConfig(e.Config); err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	return e, nil
}

// StartRegistry starts one more registry and adds it to e.Registries.
func (e *Env) StartRegistry(ctx context.Context, name string) (*Registry, error) {
	r, err := StartRegistry(ctx, e.tb, e.Bin.Registry, e.Dir, name)
	if err != nil {
		return nil, err
	}
	e.Registries = append(e.Registries, r)
	e.tb.Logf("registry %s ready at %s", name, r.Host)
	return r, nil
}

// Registry is the first registry.
func (e *Env) Registry() *Registry { return e.Registries[0] }

// InstallCRDs installs the CRDs in dir and waits until they are served.
func (e *Env) InstallCRDs(ctx context.Context, dir string) error {
	if err := InstallCRDs(ctx, e.Dynamic, dir); err != nil {
		return err
	}
	e.tb.Logf("CRDs from %s established", dir)
	return nil
}

// StartSigngate starts signgate serve against this API server. opts.Bin
// and opts.Kubeconfig default to bin/signgate and the admin kubeconfig.
// It writes gate-config.yaml and the serving pair into e.Dir and sets
// e.Signgate: it starts the environment's gate. A test that needs a gate
// of its own calls the package's StartSigngate with a directory of its own.
func (e *Env) StartSigngate(ctx context.Context, opts SigngateOptions) error {
	if opts.Bin == "" {
		opts.Bin = e.Bin.Signgate
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = e.APIServer.Kubeconfig
	}
	t0 := time.Now()
	s, err := StartSigngate(ctx, e.tb, e.Dir, e.CA, opts)
	if err != nil {
		return err
	}
	e.Signgate = s
	e.tb.Logf("signgate ready at %s, metrics %s (%s)", s.URL, s.MetricsURL, time.Since(t0).Round(time.Millisecond))
	return nil
}

// RegisterWebhooks registers signgate's webhook configurations and waits
// until the API server calls them.
func (e *Env) RegisterWebhooks(ctx context.Context) error {
	if err := RegisterWebhooks(ctx, e.Client, e.Signgate.URL, e.CA.CertPEM); err != nil {
		return err
	}
	t0 := time.Now()
	if err := e.waitWebhooks(ctx); err != nil {
		return err
	}
	e.tb.Logf("webhooks active (%s)", time.Since(t0).Round(time.Millisecond))
	return nil
}

// RESTMapper maps kinds to resources through discovery (fresh each call,
// so CRDs installed meanwhile are found).
func (e *Env) RESTMapper() *restmapper.DeferredDiscoveryRESTMapper {
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.Client.Discovery()))
}

// randomPassword is 16 random bytes, hex.
func randomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
