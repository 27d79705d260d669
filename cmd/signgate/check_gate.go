package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/server"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// newCheckGate builds the gate check runs objects through: the
// configuration (--config, defaults otherwise), the policies of --policy-dir
// with the namespace labels of the manifests and --namespace-labels, and
// the real verifier (or, --offline, none: the gate contacts no registry).
func newCheckGate(ctx context.Context, opts checkOptions, ms []manifest) (admissionGate, error) {
	cfg, err := loadCheckConfig(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	policies, err := loadCheckPolicies(ctx, opts, ms)
	if err != nil {
		return nil, err
	}
	gopts := admission.Options{
		Offline:  opts.Offline,
		Policies: policies,
		Config:   admission.StaticConfig{Config: cfg},
		Remedies: checkRemedies(opts),
	}
	if opts.Offline {
		return admission.NewGate(gopts)
	}
	vo, err := checkVerifierOptions(cfg, opts)
	if err != nil {
		return nil, err
	}
	v, err := verifier.New(vo)
	if err != nil {
		return nil, fmt.Errorf("configure the verifier: %w", err)
	}
	watch := &refusalWatch{Verifier: v, remedies: gopts.Remedies}
	gopts.Verifier = watch
	gate, err := admission.NewGate(gopts)
	if err != nil {
		return nil, err
	}
	return watchedGate{Gate: gate, watch: watch}, nil
}

func loadCheckConfig(file string) (*policy.Config, error) {
	if file == "" {
		return policy.DefaultConfig(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read --config: %w", err)
	}
	cfg, err := policy.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

// loadCheckPolicies reads --policy-dir (none given: no policy applies,
// every image falls to unmatchedImages). The labels of each namespace are, in increasing precedence: its name label,
// the policy dir's Namespace object, the Namespace objects among the
// checked manifests (applied before the objects in them), --namespace-labels.
func loadCheckPolicies(ctx context.Context, opts checkOptions, ms []manifest) (policy.Source, error) {
	if opts.Cluster {
		rc, err := restConfig(opts.Kubeconfig, opts.KubeContext)
		if err != nil {
			return nil, err
		}
		// The informers run until ctx ends: runCheck cancels it on return.
		src, err := clusterPolicies(ctx, rc, opts.GateNamespace, namespaceLabels(opts, ms), opts.ClusterTimeout)
		return src, err
	}
	roots, err := trustRoots(opts.TrustRoots)
	if err != nil {
		return nil, err
	}
	src, err := policy.NewFileSource(opts.PolicyDir, policy.FileOptions{NamespaceLabels: namespaceLabels(opts, ms), TrustRoots: roots})
	if err != nil {
		return nil, fmt.Errorf("--policy-dir %s: %w", opts.PolicyDir, err)
	}
	return src, nil
}

// namespaceLabels are the labels check adds to the policy dir's namespaces:
// those of Namespace objects in the manifests, then --namespace-labels for
// every namespace the manifests use.
func namespaceLabels(opts checkOptions, ms []manifest) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, m := range ms {
		if m.Kind == "Namespace" && m.APIVersion == "v1" && m.Name != "" {
			out[m.Name] = maps.Clone(m.Labels)
		}
	}
	if len(opts.NamespaceLabels) == 0 {
		return out
	}
	for _, m := range ms {
		ns := checkNamespace(m, opts.Namespace)
		l := out[ns]
		if l == nil {
			l = map[string]string{}
		}
		maps.Copy(l, opts.NamespaceLabels)
		out[ns] = l
	}
	return out
}

// checkVerifierOptions are the gate's verifier options plus the
// command line's extra insecure and allowed registries.
func checkVerifierOptions(cfg *policy.Config, opts checkOptions) (verifier.Options, error) {
	o, err := server.VerifierOptions(cfg)
	if err != nil {
		return verifier.Options{}, err
	}
	o.InsecureRegistries = append(o.InsecureRegistries, opts.Insecure...)
	o.AllowedHosts = append(o.AllowedHosts, opts.AllowHosts...)
	// A larger cache on request (audit), never one the configuration
	// turned off.
	if size := cmp.Or(o.CacheSize, verifier.DefaultCacheSize); size > 0 && opts.CacheSize > size {
		o.CacheSize = opts.CacheSize
	}
	return o, nil
}

// trustRoots reads --trusted-root NAME=FILE (checked by options).
func trustRoots(flags []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range flags {
		name, file, _ := strings.Cut(f, "=")
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--trusted-root: TrustRoot %q given twice", name)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--trusted-root %s: %w", name, err)
		}
		out[name] = data
	}
	return out, nil
}
