package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command tree. Each command's flags are defined next to the command
// (serve.go, check.go, lint.go, verify.go, version.go); this file holds the
// root, the mapping of errors to exit codes and the flag helpers the
// commands share, so that one flag has one spelling and one meaning
// everywhere.

// exitError ends a command with an exit code other than exitUsage for a
// usage error. err, when set, is printed as "signgate CMD: err"; nil means
// the command has already reported.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode turns a command's exit code into RunE's error: nil for exitOK.
func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// exitWith ends a command with code and prints err.
func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// run executes one command line and returns the exit code: 0 ok, 1
// denied, 2 usage, configuration or input error, 3 undecided. Help goes to
// stdout; errors to stderr, a usage error (unknown command or flag, bad
// flag value, missing argument) with a pointer to --help.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	if len(args) == 0 {
		root.SetOut(stderr)
		_ = root.Help()
		return exitUsage
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil {
		cmd = root
	}
	if ee, ok := errors.AsType[*exitError](err); ok {
		if ee.err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), ee.err)
		}
		return ee.code
	}
	// cobra's and pflag's errors and the commands' own checks of their
	// flags and arguments.
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return exitUsage
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "signgate",
		Short: "Admission gate for container images signed with cosign",
		Long: `signgate is the admission gate for signed images: serve runs the mutating and
validating webhooks, check evaluates manifests the way the webhooks would,
audit lists running workloads that today's (or proposed) policies would
deny, lint checks policy files, verify resolves and verifies one image,
verify-bundle verifies a sigstore bundle (the sigstore-conformance CLI
protocol), probe calls a running gate's webhooks the way the API server
does, uninstall-webhooks removes the webhook configurations before the gate
is uninstalled.

Exit codes (every command): 0 ok; 1 denied or not verified; 2 usage,
configuration or input error; 3 undecided (registry trouble, retry).`,
		Version:            versionString(),
		SilenceUsage:       true,
		SilenceErrors:      true,
		DisableSuggestions: true, // one-line errors
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("signgate {{.Version}}\n")
	root.AddCommand(newServeCmd(), newCheckCmd(), newAuditCmd(), newLintCmd(), newConvertCmd(), newVerifyCmd(), newVerifyBundleCmd(), newProbeCmd(), newUninstallCmd(), newVersionCmd())
	return root
}

// noArgs rejects positional arguments with a hint where the input goes.
func noArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected argument %q (%s)", args[0], hint)
		}
		return nil
	}
}

// listKind says how a repeatable flag splits its values.
type listKind int

const (
	// paths: one value per flag, verbatim (a comma can be part of a path).
	paths listKind = iota
	// hosts: also comma-separated (--allow-host a:5000,b:5000); blanks are trimmed.
	hosts
)

// listFlag defines a repeatable flag on fs. Read host lists through
// cleanList, which trims what a comma-separated list leaves around its
// elements.
func listFlag(fs *pflag.FlagSet, p *[]string, kind listKind, name, short, usage string) {
	if kind == hosts {
		fs.StringSliceVarP(p, name, short, nil, usage)
		return
	}
	fs.StringArrayVarP(p, name, short, nil, usage)
}

// cleanList trims the elements of l and drops empty ones.
func cleanList(l []string) []string {
	var out []string
	for _, s := range l {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Flags shared by several commands: one definition each.

func configFlag(fs *pflag.FlagSet, p *string, reload string) {
	fs.StringVar(p, "config", "", "GateConfiguration `FILE`"+reload+" (default: built-in defaults)")
}

func policyDirFlag(fs *pflag.FlagSet, p *string, watched string) {
	fs.StringVar(p, "policy-dir", "", "load ClusterImagePolicy, ImagePolicy, TrustRoot, Namespace, Secret and ConfigMap objects from the YAML files in `DIR` instead of a cluster"+watched)
}

// registryFlags are --insecure-registry and --allow-host of check and
// verify. They mean the same as the GateConfiguration's
// registry.insecureRegistries and registry.allowedHosts, and are added to
// them: plain HTTP is one choice, reaching a loopback or link-local address
// another.
func registryFlags(fs *pflag.FlagSet, insecure, allow *[]string) {
	listFlag(fs, insecure, hosts, "insecure-registry", "", "registry `HOST[:PORT]` reached over plain HTTP instead of HTTPS (a loopback registry also needs --allow-host); repeatable, comma-separated")
	listFlag(fs, allow, hosts, "allow-host", "", "registry `HOST[:PORT]` allowed although it is loopback or link-local (local registries); repeatable, comma-separated")
}
