package server

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/audit"
	"github.com/signgate/signgate/verifier"
)

// startAudit runs the background audit (Options.Audit) until the server
// closes: the replica that holds the Lease scans with a gate like the
// webhooks' (the same policies, configuration and verifier caches) whose
// registry lookups are throttled (audit.Throttled).
func (s *Server) startAudit(ctx context.Context, o Options, gopts admission.Options, v *verifier.Verifier, reg prometheus.Registerer) error {
	policies, ok := s.policies.(audit.Policies)
	if !ok || o.PolicyDir != "" {
		return errors.New("the background audit needs a cluster: it cannot be used with a policy directory")
	}
	rc, err := RESTConfig(o.Kubeconfig, "")
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	m, err := audit.NewMetrics(reg)
	if err != nil {
		return err
	}
	id := o.Audit.Identity
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return fmt.Errorf("background audit: no identity for the Lease (POD_NAME unset, host name: %w)", err)
		}
	}
	gopts.Verifier = audit.NewThrottled(v, o.Audit.RegistryQPS, o.Audit.RegistryBurst)
	gate, err := admission.NewGate(gopts)
	if err != nil {
		return err
	}
	scanner := &audit.Scanner{Gate: gate, Dyn: dyn, Policies: policies, Interval: o.Audit.Interval, Log: s.log, Metrics: m}
	election := audit.Election{
		Kube: kube, Namespace: o.Namespace, Name: o.Audit.LeaseName, Identity: id,
		LeaseDuration: o.Audit.LeaseDuration, Log: s.log, Metrics: m,
	}
	s.goRun(ctx, func(ctx context.Context) { election.Run(ctx, scanner.Run) })
	return nil
}
