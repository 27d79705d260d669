// Package policy decides what a pod must satisfy; it does not check it
// against registries.
//
// Trust: ClusterImagePolicy and ImagePolicy objects (API types in
// policy/v1alpha1) are loaded from a cluster (ClusterSource, informers) or
// from a directory of YAML files (FileSource), compiled once per change, and
// served as a Snapshot: for one image in one namespace, the Requirements every
// applicable policy adds (docs/policies.md). Pod Security levels, hardening checks
// and the gate configuration live here too.
//
// The package is pure with respect to registries: it never imports verifier,
// admission or registry clients. Admission turns Requirements into verifier
// calls and decisions.
package policy
