package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checkOptions are the flags of `signgate check`.
type checkOptions struct {
	Files           []string          // -f: files, directories or "-"
	Namespace       string            // for objects without metadata.namespace; default "default"
	NamespaceLabels map[string]string // override the labels of every namespace checked
	ConfigFile      string            // GateConfiguration; default: built-in defaults
	PolicyDir       string            // policies, Namespaces and Secrets as YAML
	Output          string            // "text" (default) or "json"
	Offline         bool              // no registry I/O at all
	Insecure        []string          // registries reachable over plain HTTP
	AllowHosts      []string          // registries allowed although on loopback/link-local
}

// pathList is a repeatable flag of paths (commas are part of a path).
type pathList []string

func (l *pathList) String() string     { return strings.Join(*l, " ") }
func (l *pathList) Set(v string) error { *l = append(*l, v); return nil }

// hostList is a repeatable, comma-separated flag of host[:port].
type hostList []string

func (l *hostList) String() string { return strings.Join(*l, ",") }
func (l *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func parseCheckFlags(args []string, stderr io.Writer) (checkOptions, error) {
	fs := flag.NewFlagSet("signgate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts     checkOptions
		files    pathList
		nsLabels string
		insecure hostList
		allow    hostList
	)
	fs.Var(&files, "f", "manifest `FILE`, directory (recursive: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fs.Var(&files, "filename", "same as -f")
	fs.StringVar(&opts.Namespace, "namespace", "default", "namespace of objects that do not set metadata.namespace")
	fs.StringVar(&opts.Namespace, "n", "default", "same as --namespace")
	fs.StringVar(&nsLabels, "namespace-labels", "", "`k=v,...` labels for the namespaces checked (override the policy dir's Namespace objects)")
	fs.StringVar(&opts.ConfigFile, "config", "", "GateConfiguration `FILE` (default: built-in defaults)")
	fs.StringVar(&opts.PolicyDir, "policy-dir", "", "`DIR` of ClusterImagePolicy, ImagePolicy, Namespace and Secret YAML files")
	fs.StringVar(&opts.Output, "o", "text", "output format: text or json")
	fs.StringVar(&opts.Output, "output", "text", "same as -o")
	fs.BoolVar(&opts.Offline, "offline", false, "no registry lookups: check Pod Security and hardening only; signatures are NOT checked")
	fs.Var(&insecure, "insecure-registry", "`HOST[:PORT]` reachable over plain HTTP; repeatable")
	fs.Var(&allow, "allow-host", "`HOST[:PORT]` allowed although it is loopback or link-local (local registries); repeatable")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: signgate check -f FILE|DIR|- [flags]

Evaluates manifests exactly as the webhooks would (/mutate, then /validate on
the pinned object). Exit 0: all admitted; 1: something denied; 2: usage,
input or configuration error; 3: undecided (registry trouble), nothing denied.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q (manifests are given with -f)", fs.Arg(0))
	}
	if len(files) == 0 {
		return opts, errors.New("-f is required (a file, a directory or - for stdin)")
	}
	if opts.Output != "text" && opts.Output != "json" {
		return opts, fmt.Errorf("-o %q: want text or json", opts.Output)
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return opts, fmt.Errorf("--namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
	}
	l, err := parseLabels(nsLabels)
	if err != nil {
		return opts, err
	}
	opts.Files, opts.NamespaceLabels, opts.Insecure, opts.AllowHosts = files, l, insecure, allow
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

// checkCmd is `signgate check`.
func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseCheckFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "signgate check: %v\n", err)
		return exitUsage
	}
	return runCheck(ctx, opts, newCheckGate, os.Stdin, stdout, stderr, useColor(stdout, os.Getenv))
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
	gate, err := newGate(ctx, opts, ms)
	if err != nil {
		fmt.Fprintf(stderr, "signgate check: %v\n", err)
		return exitUsage
	}
	r := newReport(opts.Offline)
	for i, m := range ms {
		ns := checkNamespace(m, opts.Namespace)
		if _, ok := podSpecPrefix(m.APIVersion, m.Kind); !ok {
			r.skip(skippedObject{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name, Source: m.At, Reason: skipReason(m)})
			continue
		}
		o, err := checkObject(ctx, gate, m, ns, i)
		if err != nil {
			fmt.Fprintf(stderr, "signgate check: %s: %v\n", m.At, err)
			return exitUsage
		}
		if opts.Offline {
			o = offlineResult(o)
		}
		r.add(o)
	}
	if opts.Output == "json" {
		err = writeJSON(stdout, r)
	} else {
		writeText(stdout, r, palette{on: color})
	}
	if err != nil {
		fmt.Fprintf(stderr, "signgate check: write report: %v\n", err)
		return exitUsage
	}
	if w, ok := gate.(refusalReporter); ok {
		if refused := w.refusals(); len(refused) > 0 {
			for _, msg := range refused {
				fmt.Fprintf(stderr, "signgate check: %s\n", msg)
			}
			return exitUsage // a configuration problem, not a denial
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
