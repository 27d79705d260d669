package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of the trust policies.
const Group = "signgate.dev"

// Version is the API version of this package.
const Version = "v1alpha1"

// GroupVersion is signgate.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Resources of the group, for dynamic clients and informers.
var (
	ClusterImagePolicyResource = GroupVersion.WithResource("clusterimagepolicies")
	ImagePolicyResource        = GroupVersion.WithResource("imagepolicies")
	TrustRootResource          = GroupVersion.WithResource("trustroots")
)

// AddToScheme registers the group's kinds (and their Lists) with s.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ClusterImagePolicy{}, &ClusterImagePolicyList{},
		&ImagePolicy{}, &ImagePolicyList{},
		&TrustRoot{}, &TrustRootList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
