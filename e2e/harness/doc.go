//go:build e2e

// Package harness starts the real programs signgate runs against — etcd,
// kube-apiserver, the CNCF distribution registry, the cosign CLI and
// `signgate serve` itself — on free 127.0.0.1 ports with temporary
// directories, and wires them together: CRDs installed, webhook
// configurations registered, namespaces with their default ServiceAccount.
//
// It is used by the e2e suite and by the demo (e2e/cmd/demo). Everything it
// starts is registered with the caller's TB for teardown, so a failure half
// way through still stops every process. Each program writes its output to a
// log file under the caller's temp dir; the last lines are printed when the
// caller failed.
//
// The harness is not a Kubernetes distribution: there is no controller
// manager, scheduler or kubelet. Pods are only stored, which is all admission
// needs.
package harness
