package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/signgate/signgate/admission"
)

// checkOptions are the flags of `signgate check`.
type checkOptions struct {
	Files           []string          // -f: files, directories or "-"
	Namespace       string            // for objects without metadata.namespace; default "default"
	NamespaceLabels map[string]string // override the labels of every namespace checked
	ConfigFile      string            // GateConfiguration; default: built-in defaults
	PolicyDir       string            // policies, Namespaces and Secrets as YAML
	TrustRoots      []string          // --trusted-root NAME=FILE: TrustRoots for the policies
	Output          string            // "text" (default) or "json"
	Offline         bool              // no registry I/O at all
	Insecure        []string          // registries reached over plain HTTP
	AllowHosts      []string          // registries allowed although on loopback/link-local
	Cluster         bool              // policies, Namespaces and Secrets from the cluster (read only)
	Kubeconfig      string            // with Cluster; default $KUBECONFIG, ~/.kube/config
	KubeContext     string            // with Cluster; default the kubeconfig's current context
	GateNamespace   string            // with Cluster: where ClusterImagePolicy secretRefs live
	ClusterTimeout  time.Duration     // with Cluster: how long to wait for the policies to load
	CacheSize       int               // verdict cache entries at least (audit: every image of the run); 0: the configuration's
}

// newCheckCmd is `signgate check`.
func newCheckCmd() *cobra.Command {
	var o checkFlags
	cmd := &cobra.Command{
		Use:   "check -f FILE|DIR|- [flags]",
		Short: "Evaluate manifests the way the webhooks would (for CI)",
		Long: `Evaluates manifests exactly as the webhooks would (/mutate, then /validate on
the pinned object) and prints one line per object (-o json: a report).

Exit codes: 0 all admitted; 1 something denied; 2 usage, input or
configuration error; 3 undecided (registry trouble), nothing denied.`,
		Example: `  signgate check -f deploy/ --policy-dir policies/ -n team-a
  helm template charts/app | signgate check -f - --config gate.yaml -o json
  signgate check -f pod.yaml --offline
  signgate check -f deploy/ --cluster --context prod -n team-a`,
		Args: noArgs("manifests are given with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := o.options()
			if err != nil {
				return err
			}
			stdout := cmd.OutOrStdout()
			return exitCode(runCheck(cmd.Context(), opts, newCheckGate, cmd.InOrStdin(), stdout, cmd.ErrOrStderr(), useColor(stdout, os.Getenv)))
		},
	}
	o.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.MarkFlagDirname("policy-dir")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// checkFlags are the flags of `signgate check` as given; options validates
// them.
type checkFlags struct {
	checkOptions
	nsLabels string
}

func (o *checkFlags) addFlags(fs *pflag.FlagSet) {
	listFlag(fs, &o.Files, paths, "filename", "f", "manifest `FILE`, directory (recursive: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fs.StringVarP(&o.Namespace, "namespace", "n", "default", "`NAMESPACE` of the objects that do not set metadata.namespace")
	fs.StringVar(&o.nsLabels, "namespace-labels", "", "`k=v,...` labels for the namespaces checked (override the policy dir's Namespace objects)")
	configFlag(fs, &o.ConfigFile, "")
	policyDirFlag(fs, &o.PolicyDir, "")
	listFlag(fs, &o.TrustRoots, paths, "trusted-root", "", "the TrustRoot keyless authorities name, as `NAME=FILE` (FILE: a Sigstore trusted_root.json); repeatable, never fetched")
	fs.StringVarP(&o.Output, "output", "o", "text", "output `FORMAT`: text or json")
	fs.BoolVar(&o.Offline, "offline", false, "no registry lookups: tags not resolved, signatures NOT checked; the rest decided as online")
	registryFlags(fs, &o.Insecure, &o.AllowHosts)
	fs.BoolVar(&o.Cluster, "cluster", false, "read ClusterImagePolicies, ImagePolicies, Namespaces and referenced Secrets from the cluster (read only; instead of --policy-dir)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "with --cluster: kubeconfig `FILE` (default: $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&o.KubeContext, "context", "", "with --cluster: kubeconfig `CONTEXT` (default: the current context)")
	fs.StringVar(&o.GateNamespace, "gate-namespace", "signgate-system", "with --cluster: the `NAMESPACE` signgate runs in, where ClusterImagePolicy secretRefs are read")
	fs.DurationVar(&o.ClusterTimeout, "cluster-timeout", 30*time.Second, "with --cluster: give up (exit 2) when the policies are not loaded within `DURATION`")
}

func (o *checkFlags) options() (checkOptions, error) {
	opts := o.checkOptions
	if len(opts.Files) == 0 {
		return opts, errors.New("-f is required (a file, a directory or - for stdin)")
	}
	switch {
	case opts.Cluster && opts.PolicyDir != "":
		return opts, errors.New("--cluster and --policy-dir both name where policies come from: pass one")
	case !opts.Cluster && (opts.Kubeconfig != "" || opts.KubeContext != ""):
		return opts, errors.New("--kubeconfig and --context need --cluster (check reads policies from files unless told to read the cluster)")
	case opts.Cluster && opts.ClusterTimeout <= 0:
		return opts, errors.New("--cluster-timeout must be positive")
	case opts.Cluster && len(opts.TrustRoots) > 0:
		return opts, errors.New("--trusted-root and --cluster: with --cluster the cluster's TrustRoots are used; pass one")
	}
	for _, tr := range opts.TrustRoots {
		name, file, ok := strings.Cut(tr, "=")
		if !ok || file == "" {
			return opts, fmt.Errorf("--trusted-root %q: want NAME=FILE, NAME being the TrustRoot the policies' keyless authorities name", tr)
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return opts, fmt.Errorf("--trusted-root %q: TrustRoot name %q: %s", tr, name, strings.Join(errs, "; "))
		}
	}
	if opts.Output != "text" && opts.Output != "json" {
		return opts, fmt.Errorf("-o %q: want text or json", opts.Output)
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return opts, fmt.Errorf("--namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
	}
	l, err := parseLabels(o.nsLabels)
	if err != nil {
		return opts, err
	}
	opts.NamespaceLabels, opts.Insecure, opts.AllowHosts = l, cleanList(opts.Insecure), cleanList(opts.AllowHosts)
	return opts, nil
}

// parseLabels parses "k=v,k2=v2" and validates keys and values like the API
// server would.
func parseLabels(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	set, err := labels.ConvertSelectorToLabelsMap(s)
	if err != nil {
		return nil, fmt.Errorf("--namespace-labels %q: %w", s, err)
	}
	for k, v := range set {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-labels: key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-labels: value %q: %s", v, strings.Join(errs, "; "))
		}
	}
	return set, nil
}

// gateFactory builds the gate check runs every object through, from the
// options and the manifests (whose Namespace objects can carry labels).
type gateFactory func(ctx context.Context, opts checkOptions, ms []manifest) (admissionGate, error)

// runCheck reads the manifests, runs each through the gate and writes the
// report. Input and configuration errors are written to stderr with exit 2.
func runCheck(ctx context.Context, opts checkOptions, newGate gateFactory, stdin io.Reader, stdout, stderr io.Writer, color bool) int {
	ms, err := readManifests(opts.Files, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "signgate check: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithCancel(ctx) // ends what the gate runs (--cluster: informers)
	defer cancel()
	gate, err := newGate(ctx, opts, ms)
	if err != nil {
		fmt.Fprintf(stderr, "signgate check: %v\n", err)
		return exitUsage
	}
	r := newReport(opts.Offline)
	for i, m := range ms {
		ns := checkNamespace(m, opts.Namespace)
		k, ok := admission.KindOf(m.APIVersion, m.Kind)
		if !ok {
			r.skip(skippedObject{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name, Source: m.At, Reason: skipReason(m)})
			continue
		}
		o, err := checkObject(ctx, gate, m, k, ns, i)
		if err != nil {
			fmt.Fprintf(stderr, "signgate check: %s: %v\n", m.At, err)
			return exitUsage
		}
		r.add(o)
	}
	return writeReport(r, gate, opts.Output, color, stdout, stderr, "signgate check")
}

// writeReport writes r (output "json" or text) and returns the exit code:
// the report's, or 2 when the gate refused registries its configuration
// does not allow (a configuration problem, not a denial). cmd prefixes
// the messages on stderr.
func writeReport(r *report, gate admissionGate, output string, color bool, stdout, stderr io.Writer, cmd string) int {
	var err error
	if output == "json" {
		err = writeJSON(stdout, r)
	} else {
		writeText(stdout, r, palette{on: color})
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: write report: %v\n", cmd, err)
		return exitUsage
	}
	if w, ok := gate.(refusalReporter); ok {
		if refused := w.refusals(); len(refused) > 0 {
			for _, msg := range refused {
				fmt.Fprintf(stderr, "%s: %s\n", cmd, msg)
			}
			return exitUsage
		}
	}
	return r.exitCode()
}

func skipReason(m manifest) string {
	if m.Kind == "Namespace" {
		return "no pod spec (Namespace: its labels are used for the objects in it)"
	}
	return "no pod spec: " + m.Kind + " is not checked"
}

// useColor is true only when w is a terminal and NO_COLOR is unset (or
// empty) and TERM is not "dumb". Pipes and files never get escape codes.
func useColor(w io.Writer, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" || getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// checkNamespace is the namespace an object is checked in: its own, else
// --namespace; a Namespace object stands for itself.
func checkNamespace(m manifest, fallback string) string {
	switch {
	case m.Kind == "Namespace" && m.APIVersion == "v1":
		return m.Name
	case m.Namespace != "":
		return m.Namespace
	}
	return fallback
}
