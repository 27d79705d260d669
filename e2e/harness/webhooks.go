//go:build e2e

package harness

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Webhook names as the API server reports them in denials:
// `admission webhook "verify.signgate.dev" denied the request: …`.
const (
	MutatingWebhookName   = "pin.signgate.dev"
	ValidatingWebhookName = "verify.signgate.dev"
	// PolicyWebhookName checks ClusterImagePolicies, ImagePolicies and
	// TrustRoots at apply with the gate's compiler; it fails open.
	PolicyWebhookName = "policies.signgate.dev"
	webhookConfigName = "signgate"
)

// webhookRules are the operations signgate gates: pods (with the
// ephemeralcontainers subresource) and every workload kind with a pod
// template.
func webhookRules() []admissionregistrationv1.RuleWithOperations {
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rule := func(group, version string, resources ...string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{
			Operations: ops,
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{group},
				APIVersions: []string{version},
				Resources:   resources,
				Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
			},
		}
	}
	return []admissionregistrationv1.RuleWithOperations{
		rule("", "v1", "pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"),
		rule("apps", "v1", "deployments", "replicasets", "statefulsets", "daemonsets"),
		rule("batch", "v1", "jobs", "cronjobs"),
	}
}

// policyWebhookRules are the gate's own kinds, checked at apply with its
// compiler (the chart's policies.validate.signgate.dev): all scopes, so
// ImagePolicies in every namespace.
func policyWebhookRules() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{"signgate.dev"},
			APIVersions: []string{"v1alpha1"},
			Resources:   []string{"clusterimagepolicies", "imagepolicies", "trustroots"},
			Scope:       ptr.To(admissionregistrationv1.AllScopes),
		},
	}}
}

// namespaceSelector leaves kube-system out by its immutable name label, not
// by a label a tenant could set on their own namespace.
func namespaceSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key:      "kubernetes.io/metadata.name",
		Operator: metav1.LabelSelectorOpNotIn,
		Values:   []string{"kube-system"},
	}}}
}

// webhookTimeoutSeconds is the API server's deadline for each call to the
// gate: the most Kubernetes allows. Past it the fail-closed webhooks deny,
// so on a busy machine a shorter one would turn slowness into a different
// decision; the gate's registry timeout (GateConfig) lies inside it.
const webhookTimeoutSeconds = 30

// RegisterWebhooks creates the mutating and validating webhook
// configurations pointing at baseURL (/mutate, /validate), trusting caPEM:
// pods and workloads failing closed, and the gate's own kinds failing open
// (PolicyWebhookName, as the chart registers it).
func RegisterWebhooks(ctx context.Context, cs kubernetes.Interface, baseURL string, caPEM []byte) error {
	fail := admissionregistrationv1.Fail
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookConfigName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    MutatingWebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + "/mutate"), CABundle: caPEM},
			Rules:                   webhookRules(),
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](webhookTimeoutSeconds),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			NamespaceSelector:       namespaceSelector(),
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookConfigName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    ValidatingWebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + "/validate"), CABundle: caPEM},
			Rules:                   webhookRules(),
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](webhookTimeoutSeconds),
			NamespaceSelector:       namespaceSelector(),
		}, {
			Name:                    PolicyWebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(baseURL + "/validate"), CABundle: caPEM},
			Rules:                   policyWebhookRules(),
			FailurePolicy:           &ignore,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](webhookTimeoutSeconds),
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mutating, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create mutating webhook configuration: %w", err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create validating webhook configuration: %w", err)
	}
	return nil
}
