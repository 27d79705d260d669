package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/audit"
)

// auditOptions are the flags of `signgate audit`: the gate is built as
// check builds it (checkOptions: --config, --policy-dir or the cluster's
// policies, registries, -o), the objects come from the cluster.
type auditOptions struct {
	checkOptions
	Namespaces  []string // -n: only these namespaces; none: all
	ChunkSize   int64    // objects per list request (pagination)
	Concurrency int      // objects evaluated at once
}

func newAuditCmd() *cobra.Command {
	var o auditFlags
	cmd := &cobra.Command{
		Use:   "audit [flags]",
		Short: "List running pods and workloads that today's (or proposed) policies would deny",
		Long: `Lists the pods running in the cluster and the workload templates (Deployments,
StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs,
CronJobs) that the policies would deny if they were created now: the
cluster's own policies, or proposed ones (--policy-dir) before you apply
them, switch a policy to enforce or revoke a key. Each object goes through
the webhooks' own decision (as check does), with the namespaces' labels
from the cluster; registry lookups share one verdict cache, so each
distinct image is verified once per set of authorities.

Exit codes: 0 nothing would be denied; 1 something would be denied; 2
usage, configuration or cluster access error; 3 undecided (registry
trouble), nothing denied.`,
		Example: `  signgate audit --context prod
  signgate audit --policy-dir proposed/ -n team-a -o json
  signgate audit --config gate.yaml --policy-dir policies/`,
		Args: noArgs("the objects are read from the cluster; -n limits the namespaces"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options()
			if err != nil {
				return err
			}
			rc, err := restConfig(opts.Kubeconfig, opts.KubeContext)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			dyn, err := dynamic.NewForConfig(rc)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("kubernetes client: %w", err)}
			}
			stdout := cmd.OutOrStdout()
			return exitCode(runAudit(cmd.Context(), opts, dyn, newCheckGate, stdout, cmd.ErrOrStderr(), useColor(stdout, os.Getenv)))
		},
	}
	o.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.MarkFlagDirname("policy-dir")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type auditFlags struct{ auditOptions }

func (o *auditFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&o.Namespaces, "namespace", "n", nil, "audit only `NAMESPACE`; repeatable (default: every namespace)")
	configFlag(fs, &o.ConfigFile, "")
	fs.StringVar(&o.PolicyDir, "policy-dir", "", "proposed policies: ClusterImagePolicy, ImagePolicy, TrustRoot, Secret and ConfigMap objects from the YAML files in `DIR` instead of the cluster's (namespace labels still come from the cluster)")
	listFlag(fs, &o.TrustRoots, paths, "trusted-root", "", "with --policy-dir: the TrustRoot keyless authorities name, as `NAME=FILE`; repeatable, never fetched")
	fs.StringVarP(&o.Output, "output", "o", "text", "output `FORMAT`: text or json")
	registryFlags(fs, &o.Insecure, &o.AllowHosts)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&o.KubeContext, "context", "", "kubeconfig `CONTEXT` (default: the current context)")
	fs.StringVar(&o.GateNamespace, "gate-namespace", "signgate-system", "the `NAMESPACE` signgate runs in, where ClusterImagePolicy secretRefs are read")
	fs.DurationVar(&o.ClusterTimeout, "cluster-timeout", 30*time.Second, "give up (exit 2) when the cluster's policies are not loaded within `DURATION`")
	fs.Int64Var(&o.ChunkSize, "chunk-size", 500, "list at most `N` objects per request (pagination, as kubectl)")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "evaluate up to `N` objects at once (lookups of the same image are shared)")
}

func (o *auditFlags) options() (auditOptions, error) {
	opts := o.auditOptions
	opts.Cluster = opts.PolicyDir == ""
	switch {
	case opts.Output != "text" && opts.Output != "json":
		return opts, fmt.Errorf("-o %q: want text or json", opts.Output)
	case opts.ChunkSize <= 0:
		return opts, errors.New("--chunk-size must be positive")
	case opts.Concurrency <= 0:
		return opts, errors.New("--concurrency must be positive")
	case opts.ClusterTimeout <= 0:
		return opts, errors.New("--cluster-timeout must be positive")
	case opts.Cluster && len(opts.TrustRoots) > 0:
		return opts, errors.New("--trusted-root needs --policy-dir: the cluster's policies use the cluster's TrustRoots")
	}
	for _, tr := range opts.TrustRoots {
		if name, file, ok := strings.Cut(tr, "="); !ok || name == "" || file == "" {
			return opts, fmt.Errorf("--trusted-root %q: want NAME=FILE, NAME being the TrustRoot the policies' keyless authorities name", tr)
		}
	}
	for _, ns := range opts.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return opts, fmt.Errorf("--namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	opts.Namespace = "default" // unused: every listed object has its namespace
	opts.Insecure, opts.AllowHosts = cleanList(opts.Insecure), cleanList(opts.AllowHosts)
	return opts, nil
}

// runAudit lists the cluster's pods and workloads, runs each through the
// gate and writes the report (check's format, kind AuditReport).
func runAudit(ctx context.Context, opts auditOptions, dyn dynamic.Interface, newGate gateFactory, stdout, stderr io.Writer, color bool) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "signgate audit: %v\n", err)
		return exitUsage
	}
	ms, err := listAuditObjects(ctx, dyn, opts.Namespaces, opts.ChunkSize)
	if err != nil {
		return fail(err)
	}
	// Proposed policies see the namespaces' labels as the cluster has them
	// (Pod Security levels, policies' namespace selectors); the cluster's
	// own policies read them themselves.
	var nsObjects []manifest
	if !opts.Cluster {
		if nsObjects, err = listNamespaces(ctx, dyn, opts.ChunkSize); err != nil {
			return fail(err)
		}
	}
	// One verdict per distinct image and authority set: the cache holds
	// every image of the run.
	opts.CacheSize = 16*len(ms) + 1024
	ctx, cancel := context.WithCancel(ctx) // ends what the gate runs (informers)
	defer cancel()
	gate, err := newGate(ctx, opts.checkOptions, nsObjects)
	if err != nil {
		return fail(err)
	}
	results, err := evaluateConcurrently(ctx, gate, ms, opts.Concurrency)
	if err != nil {
		return fail(err)
	}
	r := newReport(false)
	r.Kind = "AuditReport"
	for _, o := range results {
		r.add(o)
	}
	return writeReport(r, gate, opts.Output, color, stdout, stderr, "signgate audit")
}

// evaluateConcurrently runs ms through the gate, up to n at once, and
// returns the results in the order of ms. The first error ends the run.
func evaluateConcurrently(ctx context.Context, gate admissionGate, ms []manifest, n int) ([]objectResult, error) {
	results := make([]objectResult, len(ms))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, len(ms)) {
		wg.Go(func() {
			for i := range next {
				m := ms[i]
				k, _ := admission.KindOf(m.APIVersion, m.Kind)
				o, err := checkObject(ctx, gate, m, k, m.Namespace, i)
				if err != nil {
					cancel(fmt.Errorf("%s %s: %w", m.Kind, objectName(m.Namespace, m.Name), err))
					continue
				}
				results[i] = o
			}
		})
	}
feed:
	for i := range ms {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return results, nil
}

// listAuditObjects lists the cluster's running pods and workload
// templates (audit.List) as check's manifests.
func listAuditObjects(ctx context.Context, dyn dynamic.Interface, namespaces []string, chunk int64) ([]manifest, error) {
	objs, err := audit.List(ctx, dyn, namespaces, chunk)
	if err != nil {
		return nil, withListHint(err)
	}
	ms := make([]manifest, len(objs))
	for i, o := range objs {
		at := source{File: "cluster"}
		if o.Controller != "" {
			at.File = "cluster, controlled by " + o.Controller
		}
		ms[i] = manifest{At: at, Raw: o.Raw, APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, Namespace: o.Namespace, Labels: o.Labels}
	}
	return ms, nil
}

// listNamespaces returns the cluster's namespaces as Namespace manifests
// (name and labels), for the proposed policies' namespace labels.
func listNamespaces(ctx context.Context, dyn dynamic.Interface, chunk int64) ([]manifest, error) {
	nss, err := audit.Namespaces(ctx, dyn, chunk)
	if err != nil {
		return nil, withListHint(err)
	}
	out := make([]manifest, 0, len(nss))
	for name, l := range nss {
		out = append(out, manifest{At: source{File: "cluster"}, APIVersion: "v1", Kind: "Namespace", Name: name, Labels: l})
	}
	return out, nil
}

// withListHint adds to a refused list how -n narrows what audit lists.
func withListHint(err error) error {
	if le, ok := errors.AsType[*audit.ListError](err); ok && apierrors.IsForbidden(le.Err) {
		return fmt.Errorf("%w (or limit it with -n to namespaces you may list)", err)
	}
	return err
}
