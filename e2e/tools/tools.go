//go:build tools

// Package tools records the main packages built by `make e2e-tools`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/pod-security-admission/cmd/webhook"
)
