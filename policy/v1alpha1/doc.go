// Package v1alpha1 holds the signgate.dev/v1alpha1 trust policy API:
// ClusterImagePolicy (cluster-scoped) and ImagePolicy (namespaced), as
// described in docs/policies.md.
//
// These are plain API types with deepcopy and controller-gen markers; the
// CRD manifests in charts/signgate/templates/crds/ are generated from them (make crds)
// and checked for staleness by make verify-crds. Compiling and matching
// policies is package policy's job, not this one's.
//
// +kubebuilder:object:generate=true
// +groupName=signgate.dev
package v1alpha1
