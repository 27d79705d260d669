package server

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/signgate/signgate/admission"
	"github.com/signgate/signgate/internal/pullsecrets"
	"github.com/signgate/signgate/internal/tufroot"
	"github.com/signgate/signgate/policy"
)

// watchConfig loads --config (or the defaults) and follows changes: a bad
// reload keeps the last good configuration, logs and counts it.
func (s *Server) watchConfig(ctx context.Context, file string, m *admission.Metrics) (admission.ConfigSource, error) {
	if file == "" {
		return admission.StaticConfig{Config: policy.DefaultConfig()}, nil
	}
	w, err := policy.NewConfigWatcher(file, policy.ConfigWatcherOptions{OnReload: func(err error) {
		if err != nil {
			m.ConfigReload("failure")
			s.log.Error("configuration not reloaded", "file", file, "err", err)
			return
		}
		m.ConfigReload("success")
		s.log.Info("configuration reloaded", "file", file)
	}})
	if err != nil {
		return nil, err
	}
	s.goRun(ctx, func(ctx context.Context) { _ = w.Run(ctx) })
	return w, nil
}

// policySource loads policies from --policy-dir, or from the cluster;
// onCompile receives the summary of every compiled view.
func (s *Server) policySource(ctx context.Context, o Options, onCompile func(policy.Summary)) (policy.Source, error) {
	if o.PolicyDir == "" {
		return s.clusterSource(ctx, o, onCompile)
	}
	src, err := policy.NewFileSource(o.PolicyDir, policy.FileOptions{GateNamespace: o.Namespace, Logger: s.log, OnCompile: onCompile})
	if err != nil {
		return nil, err
	}
	s.goRun(ctx, src.Run)
	return src, nil
}

// clusterSource follows policies and namespaces in the cluster through
// informers; /readyz stays false until their caches have synced.
func (s *Server) clusterSource(ctx context.Context, o Options, onCompile func(policy.Summary)) (policy.Source, error) {
	rc, err := RESTConfig(o.Kubeconfig, "")
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	tuf := &tufroot.Fetcher{}
	src, err := policy.NewClusterSource(dyn, kube, o.Namespace, policy.ClusterOptions{Logger: s.log, FetchTUF: tuf.Fetch, OnCompile: onCompile})
	if err != nil {
		return nil, err
	}
	s.goRun(ctx, func(ctx context.Context) {
		if err := src.Run(ctx); err != nil {
			s.log.Error("policy informers stopped", "err", err)
		}
	})
	return src, nil
}

// podPullSecrets is the pods' own registry credentials, read from the
// cluster (Options.PodPullSecrets).
func podPullSecrets(o Options) (admission.CredentialSource, error) {
	if o.PolicyDir != "" {
		return nil, errors.New("pod pull secrets are read from the cluster: they cannot be used with a policy directory")
	}
	rc, err := RESTConfig(o.Kubeconfig, "")
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return pullsecrets.New(kube, pullsecrets.Options{}), nil
}
