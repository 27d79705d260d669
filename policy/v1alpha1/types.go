package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode says what happens to a pod whose image fails a policy.
// +kubebuilder:validation:Enum=enforce;warn;audit
type Mode string

// Modes of a policy. The default is ModeEnforce.
const (
	ModeEnforce Mode = "enforce" // deny
	ModeWarn    Mode = "warn"    // admit with a warning
	ModeAudit   Mode = "audit"   // admit with an audit annotation
)

// StaticAction is the fixed verdict of a static policy.
// +kubebuilder:validation:Enum=pass;fail
type StaticAction string

// Static verdicts.
const (
	StaticPass StaticAction = "pass"
	StaticFail StaticAction = "fail"
)

// ConditionReady is the condition type reporting whether a policy compiled.
const ConditionReady = "Ready"

// Reasons of the Ready condition.
const (
	ReasonValid   = "Valid"
	ReasonInvalid = "Invalid"
)

// ImagePolicySpec is what a policy requires of the images it matches. It is
// shared by ImagePolicy and ClusterImagePolicy.
//
// +kubebuilder:validation:XValidation:rule="has(self.authorities) != has(self.static)",message="exactly one of authorities or static is required"
// +kubebuilder:validation:XValidation:rule="!has(self.threshold) || (has(self.authorities) && self.threshold <= size(self.authorities))",message="threshold must not exceed the number of authorities"
type ImagePolicySpec struct {
	// Images are globs over canonical repositories (no tag or digest):
	// "*" matches within one path segment, "**" across segments; hosts match
	// on whole labels. Docker Hub short names are canonicalized
	// ("nginx" is "index.docker.io/library/nginx").
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Images []ImageGlob `json:"images"`

	// Authorities are the keys trusted to sign matching images.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Authorities []Authority `json:"authorities,omitempty"`

	// Threshold is how many distinct authorities must verify an image.
	// Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Threshold int32 `json:"threshold,omitempty"`

	// Mode is what happens when an image fails this policy: enforce (deny),
	// warn (admit with a warning) or audit (admit with an audit annotation).
	// Default enforce.
	// +optional
	// +kubebuilder:default=enforce
	Mode Mode `json:"mode,omitempty"`

	// Static gives matching images a fixed verdict instead of checking
	// signatures.
	// +optional
	Static *Static `json:"static,omitempty"`
}

// ImageGlob selects canonical repositories.
type ImageGlob struct {
	// Glob over the canonical repository, e.g. "registry.example.com/team-a/**".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Glob string `json:"glob"`
}

// Authority is one trusted public key.
type Authority struct {
	// Name identifies the authority in messages and thresholds.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Key is the authority's public key.
	Key KeySource `json:"key"`
}

// KeySource holds a PEM public key (ECDSA P-256/P-384, RSA >= 2048 bits,
// Ed25519) inline or in a Secret.
//
// +kubebuilder:validation:XValidation:rule="has(self.data) != has(self.secretRef)",message="exactly one of data or secretRef is required"
type KeySource struct {
	// Data is the PEM-encoded public key.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Data string `json:"data,omitempty"`

	// SecretRef names a Secret key holding the PEM public key. For an
	// ImagePolicy the Secret is in the policy's namespace; for a
	// ClusterImagePolicy it is in the gate's own namespace.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// SecretKeyRef selects a key of a Secret.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// Static is a fixed verdict.
type Static struct {
	// Action is pass (admit without checking signatures) or fail (deny).
	Action StaticAction `json:"action"`
}

// ClusterImagePolicySpec is an ImagePolicySpec with a namespace selector.
type ClusterImagePolicySpec struct {
	ImagePolicySpec `json:",inline"`

	// NamespaceSelector limits the policy to namespaces whose labels match.
	// Default: every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// PolicyStatus reports whether the gate could compile the policy.
type PolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when the policy compiled and False with a
	// message when it is invalid (images it matches are then denied).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterImagePolicy requires signatures for matching images in every
// namespace its selector matches.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cip,categories=signgate
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterImagePolicySpec `json:"spec"`
	Status PolicyStatus           `json:"status,omitempty"`
}

// ClusterImagePolicyList is a list of ClusterImagePolicy.
//
// +kubebuilder:object:root=true
type ClusterImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterImagePolicy `json:"items"`
}

// ImagePolicy requires signatures for matching images in its own namespace.
// It adds to cluster policies and cannot weaken them: it is always enforced
// and never passes an image statically, since whoever can edit a namespace
// can write one (the chart aggregates write access into the edit role).
//
// +kubebuilder:validation:XValidation:rule="!has(self.spec.static) || self.spec.static.action != 'pass'",message="static pass is not allowed in an ImagePolicy: a namespace policy can only add requirements; ask the cluster administrator for a ClusterImagePolicy to admit images without a signature"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.mode) || self.spec.mode == 'enforce'",message="an ImagePolicy must use mode enforce: a namespace policy can only add requirements; use mode warn or audit in a ClusterImagePolicy, or try the policy with signgate check first"
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=ip,categories=signgate
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImagePolicySpec `json:"spec"`
	Status PolicyStatus    `json:"status,omitempty"`
}

// ImagePolicyList is a list of ImagePolicy.
//
// +kubebuilder:object:root=true
type ImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImagePolicy `json:"items"`
}
