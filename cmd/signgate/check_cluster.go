package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/signgate/signgate/internal/server"
	"github.com/signgate/signgate/policy"
)

// restConfig loads the cluster configuration the way kubectl does, and as
// serve does (server.RESTConfig).
func restConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	return server.RESTConfig(kubeconfig, kubeContext)
}

// clusterPolicies is the policy source of `signgate check --cluster`: the
// ClusterImagePolicies, ImagePolicies, Namespaces and referenced Secrets of
// the cluster the kubeconfig names, read the way the webhook reads them
// (policy.ClusterSource) but never written to (no status updates), with
// the namespace labels check adds on top (the manifests' Namespace objects,
// --namespace-labels). The informers run until ctx ends.
func clusterPolicies(ctx context.Context, rc *rest.Config, gateNamespace string, labels map[string]map[string]string, timeout time.Duration) (policy.Source, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cs, err := policy.NewClusterSource(dyn, kube, gateNamespace, policy.ClusterOptions{
		ReadOnly:        true,
		NamespaceLabels: labels,
		Resync:          time.Hour, // one compilation is all a check needs
	})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cs.Run(runCtx) }()

	waitCtx, cancelWait := context.WithTimeout(runCtx, timeout)
	defer cancelWait()
	if err := cs.WaitReady(waitCtx); err != nil {
		cancel()
		<-done
		return nil, fmt.Errorf("read policies from the cluster at %s: not loaded within %s (%v); check that signgate's CRDs are installed "+
			"and that your user may list and watch clusterimagepolicies, imagepolicies and namespaces", rc.Host, timeout, err)
	}
	context.AfterFunc(ctx, cancel) // the informers stop with ctx
	return cs, nil
}
