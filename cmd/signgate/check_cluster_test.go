package main

import (
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// TestClusterPoliciesUnreachable: a cluster whose policies cannot be read
// (here: nothing listens) fails the check within --cluster-timeout with a
// message that names the cluster and what to check, instead of waiting
// forever for the informers (which retry without end).
func TestClusterPoliciesUnreachable(t *testing.T) {
	t.Parallel()
	rc := &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}
	_, err := clusterPolicies(t.Context(), rc, "signgate-system", nil, 200*time.Millisecond)
	if err == nil {
		t.Fatal("clusterPolicies against nothing: nil error")
	}
	for _, want := range []string{"https://127.0.0.1:1", "not loaded within 200ms", "CRDs are installed", "list and watch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
