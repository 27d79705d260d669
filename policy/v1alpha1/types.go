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

	// Authorities are the keys and keyless identities trusted to sign
	// matching images.
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

// Authority is one trusted signer: a public key or a keyless identity.
//
// +kubebuilder:validation:XValidation:rule="has(self.key) != has(self.keyless)",message="exactly one of key or keyless is required"
type Authority struct {
	// Name identifies the authority in messages and thresholds.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Key is the authority's public key.
	// +optional
	Key *KeySource `json:"key,omitempty"`

	// Keyless trusts short-lived Fulcio certificates issued to the given
	// identities, checked against a TrustRoot.
	// +optional
	Keyless *KeylessAuthority `json:"keyless,omitempty"`

	// Attestations the authority must also have signed about the image:
	// it counts only when its signature verifies and every one of them is
	// satisfied.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=map
	// +listMapKey=name
	Attestations []Attestation `json:"attestations,omitempty"`
}

// Attestation requires an in-toto attestation of a predicate type, signed
// by the authority, whose subject names the image and for which Condition
// holds.
type Attestation struct {
	// Name identifies the attestation in messages; unique within the
	// authority.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// PredicateType is the predicate type URI (e.g.
	// https://slsa.dev/provenance/v1) or one of cosign's short names
	// (custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx,
	// spdxjson, cyclonedx, link, vuln, openvex).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	PredicateType string `json:"predicateType"`

	// Condition is a CEL expression that must be true of the attestation
	// (variables predicate, predicateType, subject, image.repository,
	// image.digest, now). Without one, an attestation of the type is
	// enough.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Condition string `json:"condition,omitempty"`

	// Message is a CEL string expression evaluated when Condition is
	// false, reported in the denial. Needs a condition.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}

// KeylessAuthority trusts signatures whose certificate a Fulcio CA of a
// TrustRoot issued to one of Identities and that carries every one of
// Extensions.
type KeylessAuthority struct {
	// TrustRoot names the TrustRoot (cluster-scoped) holding the Fulcio
	// CAs, transparency logs and timestamp authorities. No trust root is
	// assumed: it is required.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	TrustRoot string `json:"trustRoot"`

	// Identities are the certificate identities trusted; any one must
	// match.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Identities []KeylessIdentity `json:"identities"`

	// Extensions are Fulcio certificate extensions (by their sigstore
	// names, e.g. githubWorkflowRepository) that must all match exactly.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Extensions map[string]string `json:"extensions,omitempty"`
}

// KeylessIdentity is one OIDC issuer and certificate subject, each exact or
// an RE2 regular expression that must match the whole value.
//
// +kubebuilder:validation:XValidation:rule="has(self.issuer) != has(self.issuerRegExp)",message="exactly one of issuer or issuerRegExp is required"
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegExp)",message="exactly one of subject or subjectRegExp is required"
type KeylessIdentity struct {
	// Issuer is the exact OIDC issuer URL.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// IssuerRegExp is an RE2 regular expression over the whole issuer.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	IssuerRegExp string `json:"issuerRegExp,omitempty"`

	// Subject is the exact certificate subject (SAN): a workflow URI, an
	// e-mail address.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`

	// SubjectRegExp is an RE2 regular expression over the whole subject.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// KeySource holds a PEM public key (ECDSA P-256/P-384, RSA >= 2048 bits,
// Ed25519) inline or in a Secret.
//
// +kubebuilder:validation:XValidation:rule="has(self.data) != has(self.secretRef)",message="exactly one of data or secretRef is required"
// +kubebuilder:validation:XValidation:rule="!has(self.data) || self.data.contains('-----BEGIN PUBLIC KEY-----')",message="key.data must be a PEM PUBLIC KEY block (cosign.pub)"
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

// ConfigMapKeyRef selects a key of a ConfigMap.
type ConfigMapKeyRef struct {
	// Name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key within the ConfigMap's data (or binaryData).
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

// TrustRootSpec is sigstore trust material: a trusted_root.json given
// as it is, or fetched from a TUF repository and refreshed.
//
// +kubebuilder:validation:XValidation:rule="(has(self.trustedRoot) ? 1 : 0) + (has(self.tuf) ? 1 : 0) == 1",message="exactly one of trustedRoot or tuf is required"
type TrustRootSpec struct {
	// TrustedRoot is a sigstore trusted_root.json, as it is: for an
	// air-gapped cluster or a private deployment, refreshed by whoever
	// updates it.
	// +optional
	TrustedRoot *TrustedRootSource `json:"trustedRoot,omitempty"`

	// TUF fetches the trusted_root.json target of a TUF repository (as
	// Sigstore distributes its public-good trust root), verified from an
	// initial root.json, and refreshes it.
	// +optional
	TUF *TUFSource `json:"tuf,omitempty"`
}

// TUFSource is a TUF repository serving a sigstore trusted_root.json as
// its target "trusted_root.json".
type TUFSource struct {
	// Mirror is the repository's base URL (metadata at MIRROR/N.root.json,
	// MIRROR/timestamp.json, …; targets under MIRROR/targets/), e.g.
	// https://tuf-repo-cdn.sigstore.dev.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	Mirror string `json:"mirror"`

	// Root is the initial root.json, the trust anchor: newer roots are
	// fetched and verified from it (key rotation), never taken on trust.
	Root TrustedRootSource `json:"root"`

	// RefreshInterval is how often the repository is read again; default
	// 1h, at least 1s. When a refresh fails the last trusted root fetched
	// is kept (signgate_trustroot_age_seconds grows) and the refresh is
	// retried sooner.
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
}

// TrustedRootSource holds a JSON document (a trusted_root.json, or a TUF
// root.json) inline or in a ConfigMap or Secret of the gate's namespace.
//
// +kubebuilder:validation:XValidation:rule="(has(self.inline) ? 1 : 0) + (has(self.configMapRef) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) == 1",message="exactly one of inline, configMapRef or secretRef is required"
type TrustedRootSource struct {
	// Inline is the document itself.
	// +optional
	// +kubebuilder:validation:MaxLength=1048576
	Inline string `json:"inline,omitempty"`

	// ConfigMapRef names a ConfigMap key, in the gate's namespace, holding
	// the document.
	// +optional
	ConfigMapRef *ConfigMapKeyRef `json:"configMapRef,omitempty"`

	// SecretRef names a Secret key, in the gate's namespace, holding the
	// document.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// TrustRoot is named sigstore trust material (Fulcio CAs, transparency
// logs, CT logs, timestamp authorities) that keyless authorities refer to
// by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=signgate
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrustRoot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TrustRootSpec `json:"spec"`
}

// TrustRootList is a list of TrustRoot.
//
// +kubebuilder:object:root=true
type TrustRootList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrustRoot `json:"items"`
}
