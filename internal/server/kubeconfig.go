package server

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig loads the cluster configuration the way kubectl does:
// --kubeconfig, else $KUBECONFIG (a list of files), else ~/.kube/config,
// and the in-cluster configuration when none of them exists.
func RESTConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err):
		return nil, errors.New("no kubeconfig ($KUBECONFIG, ~/.kube/config) and no in-cluster configuration: outside a cluster, use --kubeconfig or --policy-dir")
	case err != nil && kubeconfig != "":
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	case err != nil:
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	// client-go's default (5 QPS, burst 10) queues the Secret reads of many
	// policies behind each other; 50/100 is what controllers of this kind use.
	if rc.QPS == 0 && rc.Burst == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	return rc, nil
}
