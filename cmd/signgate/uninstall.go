package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// uninstallOptions are the flags of `signgate uninstall-webhooks`.
type uninstallOptions struct {
	Mutating    []string      // MutatingWebhookConfiguration names
	Validating  []string      // ValidatingWebhookConfiguration names
	Kubeconfig  string        // default $KUBECONFIG, ~/.kube/config, in-cluster
	KubeContext string        // default the kubeconfig's current context
	Timeout     time.Duration // for the deletes and the wait until they are gone
}

// uninstallPoll is how often uninstall-webhooks asks whether a deleted
// configuration is gone.
var uninstallPoll = 500 * time.Millisecond

// newUninstallCmd is `signgate uninstall-webhooks`.
func newUninstallCmd() *cobra.Command {
	var opts uninstallOptions
	cmd := &cobra.Command{
		Use:   "uninstall-webhooks (--mutating NAME | --validating NAME)... [flags]",
		Short: "Delete the gate's webhook configurations (before uninstalling it)",
		Long: `Deletes the named MutatingWebhookConfigurations and
ValidatingWebhookConfigurations and waits until the API server no longer
has them. Run it before the gate's Deployment and Service go away: webhook
configurations that fail closed but point at a gate that is gone deny every
pod they match. The chart's pre-delete hook runs it on helm uninstall.

A configuration that does not exist counts as removed, so a second run
succeeds too. It needs get and delete on mutatingwebhookconfigurations and
validatingwebhookconfigurations (admissionregistration.k8s.io) for the
names given.

Exit codes: 0 all named configurations are gone; 1 one could not be deleted
or was still there at --timeout (API error, forbidden); 2 usage or
kubeconfig error (no names given).`,
		Example: `  signgate uninstall-webhooks --mutating signgate --validating signgate
  signgate uninstall-webhooks --validating signgate --kubeconfig admin.conf --context prod`,
		Args: noArgs("configurations are named with --mutating and --validating"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			rc, err := restConfig(opts.Kubeconfig, opts.KubeContext)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			kube, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return exitWith(exitUsage, fmt.Errorf("kubernetes client: %w", err))
			}
			return exitCode(runUninstall(cmd.Context(), kube, opts, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("kubeconfig")
	return cmd
}

func (o *uninstallOptions) addFlags(fs *pflag.FlagSet) {
	listFlag(fs, &o.Mutating, paths, "mutating", "", "delete the MutatingWebhookConfiguration `NAME`; repeatable")
	listFlag(fs, &o.Validating, paths, "validating", "", "delete the ValidatingWebhookConfiguration `NAME`; repeatable")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster configuration)")
	fs.StringVar(&o.KubeContext, "context", "", "kubeconfig `CONTEXT` (default: the current context)")
	fs.DurationVar(&o.Timeout, "timeout", time.Minute, "give up (exit 1) when the configurations are not gone within `DURATION`")
}

func (o *uninstallOptions) validate() error {
	if len(o.Mutating) == 0 && len(o.Validating) == 0 {
		return errors.New("nothing to delete: name the configurations with --mutating NAME and --validating NAME")
	}
	for _, l := range []struct {
		flag  string
		names []string
	}{{"--mutating", o.Mutating}, {"--validating", o.Validating}} {
		for _, n := range l.names {
			if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
				return fmt.Errorf("%s %q: %s", l.flag, n, strings.Join(errs, "; "))
			}
		}
	}
	if o.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	return nil
}

// webhookConfig is one configuration to remove, with the client calls for
// its kind.
type webhookConfig struct {
	kind     string // MutatingWebhookConfiguration
	resource string // mutatingwebhookconfigurations (for RBAC messages)
	name     string
	del      func(context.Context, string, metav1.DeleteOptions) error
	get      func(context.Context, string) error
}

func webhookConfigs(kube kubernetes.Interface, opts uninstallOptions) []webhookConfig {
	mut := kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	val := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	var out []webhookConfig
	for _, n := range opts.Mutating {
		out = append(out, webhookConfig{
			kind: "MutatingWebhookConfiguration", resource: "mutatingwebhookconfigurations", name: n,
			del: mut.Delete,
			get: func(ctx context.Context, n string) error { _, err := mut.Get(ctx, n, metav1.GetOptions{}); return err },
		})
	}
	for _, n := range opts.Validating {
		out = append(out, webhookConfig{
			kind: "ValidatingWebhookConfiguration", resource: "validatingwebhookconfigurations", name: n,
			del: val.Delete,
			get: func(ctx context.Context, n string) error { _, err := val.Get(ctx, n, metav1.GetOptions{}); return err },
		})
	}
	return out
}

// runUninstall deletes every named configuration, then waits until each
// is gone (GET answers NotFound). NotFound on delete counts as removed. It
// goes on past a failure, so that one forbidden name leaves no other
// configuration behind, and reports each failure on stderr: exit 1.
func runUninstall(ctx context.Context, kube kubernetes.Interface, opts uninstallOptions, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	failed := false
	fail := func(c webhookConfig, verb string, err error) {
		failed = true
		msg := err.Error()
		if apierrors.IsForbidden(err) {
			msg = fmt.Sprintf("forbidden: the user needs get and delete on %s (apiGroup admissionregistration.k8s.io, resourceNames %s): %v", c.resource, c.name, err)
		}
		fmt.Fprintf(stderr, "signgate uninstall-webhooks: %s %s: %s: %s\n", c.kind, c.name, verb, msg)
	}

	var pending []webhookConfig
	for _, c := range webhookConfigs(kube, opts) {
		err := c.del(ctx, c.name, metav1.DeleteOptions{})
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(stdout, "%s %s: not found (already removed)\n", c.kind, c.name)
		case err != nil:
			fail(c, "delete", err)
		default:
			pending = append(pending, c)
		}
	}

	// Deletion of a webhook configuration has no finalizers in a plain
	// cluster, but an admission plugin or a finalizer set by someone else
	// can hold it: report removed only what the API server no longer has.
	for _, c := range pending {
	poll:
		for {
			err := c.get(ctx, c.name)
			switch {
			case apierrors.IsNotFound(err):
				fmt.Fprintf(stdout, "%s %s: deleted\n", c.kind, c.name)
				break poll
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				fail(c, "wait until deleted", fmt.Errorf("still present after --timeout %s", opts.Timeout))
				break poll
			case ctx.Err() != nil:
				fail(c, "wait until deleted", ctx.Err())
				break poll
			case err != nil:
				fail(c, "wait until deleted", err)
				break poll
			}
			select {
			case <-ctx.Done():
			case <-time.After(uninstallPoll):
			}
		}
	}
	if failed {
		return exitDenied
	}
	return exitOK
}
