// Package chart_test renders the Helm chart with bin/helm and checks the
// properties the gate's security depends on: the gate runs restricted, the
// webhooks fail closed and cover every way a pod's images reach the API
// server, tenants cannot opt out, RBAC has no wildcards, and the values
// schema rejects bad values. The one webhook that fails open is the one
// checking the gate's own policies and TrustRoots, and it sees nothing else.
//
// It needs bin/helm (`make test` builds it first through chart-check); it
// skips only when bin/helm is absent. HELM overrides the binary's path.
package chart_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const releaseNamespace = "signgate-system"

// scenarios are the value sets every common property is checked under.
var scenarios = []struct {
	name string
	args []string
}{
	{name: "default"},
	{name: "certManager", args: []string{"--set", "certManager.enabled=true"}},
	{name: "webhookURL", args: []string{"--set", "webhook.url=https://127.0.0.1:8443", "--set", "webhook.caBundle=" + base64.StdEncoding.EncodeToString([]byte("test-ca"))}},
	{name: "noTenantSecretRefs", args: []string{"--set", "rbac.tenantSecretRefs=false"}},
	{name: "pinWorkloadTemplates", args: []string{"--set", "config.pinning.workloadTemplates=true"}},
	{name: "publicGoodTrustRoot", args: []string{"--set", "sigstore.publicGoodTrustRoot.enabled=true"}},
	{name: "clientCA", args: []string{"--set", "webhook.clientCA.existingSecret=apiserver-client-ca"}},
	{name: "podPullSecrets", args: []string{"--set", "registryCredentials.podPullSecrets=true"}},
	{name: "podPullSecretsNoTenantSecretRefs", args: []string{"--set", "registryCredentials.podPullSecrets=true", "--set", "rbac.tenantSecretRefs=false"}},
	{name: "noPolicyWebhook", args: []string{"--set", "webhook.validatePolicies=false"}},
	{name: "audit", args: []string{"--set", "audit.enabled=true"}},
	{name: "registryCAs", args: []string{"--set", "registryCAs.existingConfigMap=registry-ca",
		"--set", `config.registry.certificateAuthorities.registry\.corp\.example=/etc/signgate/registry-ca/corp.pem`}},
	// docs/helm.md's registry settings: token realms and mirrors.
	{name: "registryRealmsAndMirrors", args: []string{
		"--set-json", `config.registry.tokenRealms=[{"registry":"quay.io","realm":"auth.quay.io"}]`,
		"--set-json", `config.registry.mirrors={"docker.io":["mirror.corp.example/dockerhub"]}`}},
	// docs/helm.md's cloud registry credentials.
	{name: "cloudCredentials", args: cloudCredentialsArgs},
}

// cloudCredentialsArgs enable the three clouds' workload identity as
// docs/helm.md shows.
var cloudCredentialsArgs = []string{
	"--set-json", `config.registry.cloudCredentials=[{"provider":"ecr"},{"provider":"google"},{"provider":"azure","registries":["myregistry.azurecr.io"]}]`,
	"--set", `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::123456789012:role/signgate`,
	"--set-string", `podLabels.azure\.workload\.identity/use=true`,
}

// systemNamespaces are the default config.exemptNamespaces: typical system
// namespaces a default install must not stand in front of.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "cert-manager", "ingress-nginx",
	"monitoring", "gatekeeper-system", "kyverno", "istio-system", "linkerd", "calico-system", "tigera-operator",
	"local-path-storage", "flux-system", "argocd"}

// defaultExcluded is the webhooks' NotIn list with default values:
// kube-system, the release namespace, then config.exemptNamespaces.
func defaultExcluded() []any {
	out := []any{"kube-system", releaseNamespace}
	for _, ns := range systemNamespaces[1:] {
		out = append(out, ns)
	}
	return out
}

// policyWebhookName is the validating webhook for the gate's own kinds
// (ClusterImagePolicy, ImagePolicy, TrustRoot): the only one that fails
// open.
const policyWebhookName = "policies.validate.signgate.dev"

func TestGateRunsRestricted(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, sc.args...)
			d := one[appsv1.Deployment](t, objs, "Deployment")
			checkRestricted(t, d.Spec.Template)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
				t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
			}
			// The `helm test` Pods run restricted too.
			pods := helmTestPods(t, objs)
			if len(pods) == 0 {
				t.Error("no helm test Pod rendered")
			}
			for _, p := range pods {
				checkRestricted(t, corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec})
			}
		})
	}
}

func checkRestricted(t *testing.T, tmpl corev1.PodTemplateSpec) {
	t.Helper()
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	if res := psapolicy.AggregateCheckResults(eval.EvaluatePod(lv, &tmpl.ObjectMeta, &tmpl.Spec)); !res.Allowed {
		t.Errorf("gate pod violates PodSecurity restricted:latest: %v", res.ForbiddenReasons)
	}
	pod := tmpl.Spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser != 65532 ||
		pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault", pod)
	}
	if len(tmpl.Spec.Containers) != 1 {
		t.Fatalf("containers = %d, want 1", len(tmpl.Spec.Containers))
	}
	c := tmpl.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext = %+v, want readOnlyRootFilesystem, no privilege escalation, uid 65532, drop ALL, seccomp RuntimeDefault", sc)
	}
	for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		if list.Cpu().IsZero() || list.Memory().IsZero() {
			t.Errorf("resources = %+v, want cpu and memory requests and limits", c.Resources)
		}
	}
}

func TestDeploymentWiring(t *testing.T) {
	t.Parallel()
	d := one[appsv1.Deployment](t, render(t), "Deployment")
	c := d.Spec.Template.Spec.Containers[0]
	wantArgs := []string{"serve", "--listen", ":8443", "--metrics-listen", ":9090",
		"--tls-cert-file", "/tls/tls.crt", "--tls-key-file", "/tls/tls.key",
		"--config", "/config/config.yaml", "--namespace", releaseNamespace, "--shutdown-delay", "5s"}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Errorf("env %+v has no POD_NAMESPACE from metadata.namespace", c.Env)
	}
	checkPodName(t, c)
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		r := e.ValueFrom
		return e.Name == "SIGNGATE_MEMORY_LIMIT" && r != nil && r.ResourceFieldRef != nil &&
			r.ResourceFieldRef.Resource == "limits.memory" && r.ResourceFieldRef.Divisor.Value() == 1
	}) {
		t.Errorf("env %+v has no SIGNGATE_MEMORY_LIMIT from limits.memory (divisor 1): serve's soft memory limit", c.Env)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if diff := cmp.Diff(map[string]int32{"webhook": 8443, "metrics": 9090}, ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	for name, probe := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != name || probe.HTTPGet.Port != intstr.FromString("metrics") {
			t.Errorf("probe for %s = %+v, want httpGet %s on port metrics (9090)", name, probe, name)
		}
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v, want maxUnavailable 0", d.Spec.Strategy.RollingUpdate)
	}
	spec := d.Spec.Template.Spec
	if len(spec.TopologySpreadConstraints) == 0 || spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("want topologySpreadConstraints and podAntiAffinity, got %+v / %+v", spec.TopologySpreadConstraints, spec.Affinity)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	t.Parallel()
	objs := render(t)
	pdb := one[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
	d := one[appsv1.Deployment](t, objs, "Deployment")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	if diff := cmp.Diff(d.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels); diff != "" {
		t.Errorf("PDB selects other pods than the Deployment (-deployment +pdb):\n%s", diff)
	}
}

// webhook is the part of a mutating or validating webhook the checks need.
type webhook struct {
	kind              string
	name              string
	failurePolicy     *admissionregistrationv1.FailurePolicyType
	sideEffects       *admissionregistrationv1.SideEffectClass
	timeoutSeconds    *int32
	versions          []string
	namespaceSelector any
	rules             []admissionregistrationv1.RuleWithOperations
	clientConfig      admissionregistrationv1.WebhookClientConfig
	matchConditions   []admissionregistrationv1.MatchCondition
}

func webhooks(t *testing.T, objs []object) (mutating admissionregistrationv1.MutatingWebhookConfiguration, validating admissionregistrationv1.ValidatingWebhookConfiguration, all []webhook) {
	t.Helper()
	mutating = one[admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration")
	validating = one[admissionregistrationv1.ValidatingWebhookConfiguration](t, objs, "ValidatingWebhookConfiguration")
	for _, w := range mutating.Webhooks {
		all = append(all, webhook{"mutating", w.Name, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.NamespaceSelector, w.Rules, w.ClientConfig, w.MatchConditions})
	}
	for _, w := range validating.Webhooks {
		all = append(all, webhook{"validating", w.Name, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.NamespaceSelector, w.Rules, w.ClientConfig, w.MatchConditions})
	}
	return mutating, validating, all
}

func TestWebhooksFailClosed(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			mutating, validating, all := webhooks(t, render(t, sc.args...))
			for _, w := range all {
				if w.kind == "validating" && w.name == policyWebhookName {
					checkPolicyWebhook(t, w)
				} else if w.failurePolicy == nil || *w.failurePolicy != admissionregistrationv1.Fail {
					t.Errorf("%s %s: failurePolicy %v, want Fail", w.kind, w.name, w.failurePolicy)
				} else {
					checkNamespaceSelector(t, w)
				}
				if w.sideEffects == nil || *w.sideEffects != admissionregistrationv1.SideEffectClassNone {
					t.Errorf("%s %s: sideEffects %v, want None", w.kind, w.name, w.sideEffects)
				}
				if w.timeoutSeconds == nil || *w.timeoutSeconds != 10 {
					t.Errorf("%s %s: timeoutSeconds %v, want 10", w.kind, w.name, w.timeoutSeconds)
				}
				if !slices.Equal(w.versions, []string{"v1"}) {
					t.Errorf("%s %s: admissionReviewVersions %v, want [v1]", w.kind, w.name, w.versions)
				}
			}
			for _, w := range mutating.Webhooks {
				if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
					t.Errorf("mutating %s: reinvocationPolicy %v, want IfNeeded", w.Name, w.ReinvocationPolicy)
				}
			}
			for _, w := range validating.Webhooks {
				if len(w.MatchConditions) != 0 {
					t.Errorf("validating %s has matchConditions %v: the security boundary must see every request", w.Name, w.MatchConditions)
				}
			}
		})
	}
}

// checkPolicyWebhook: the webhook for the gate's own kinds fails open (a
// gate that is down must not block fixing its policies; it is not the
// security boundary) and therefore sees exactly the three signgate.dev
// resources, CREATE and UPDATE, and nothing a pod's images reach the API
// server through. No namespaceSelector: ImagePolicies in every namespace.
func checkPolicyWebhook(t *testing.T, w webhook) {
	t.Helper()
	if w.failurePolicy == nil || *w.failurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("%s %s: failurePolicy %v, want Ignore", w.kind, w.name, w.failurePolicy)
	}
	want := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{"signgate.dev"},
			APIVersions: []string{"v1alpha1"},
			Resources:   []string{"clusterimagepolicies", "imagepolicies", "trustroots"},
			Scope:       ptr.To(admissionregistrationv1.AllScopes),
		},
	}}
	if diff := cmp.Diff(want, w.rules); diff != "" {
		t.Errorf("%s %s: rules (-want +got):\n%s", w.kind, w.name, diff)
	}
	if sel := toMap(t, w.namespaceSelector); len(sel) != 0 {
		t.Errorf("%s %s: namespaceSelector %v, want none (ImagePolicies are checked in every namespace)", w.kind, w.name, sel)
	}
	if len(w.matchConditions) != 0 {
		t.Errorf("%s %s: matchConditions %v, want none", w.kind, w.name, w.matchConditions)
	}
}

// TestOnlyThePolicyWebhookFailsOpen: by default exactly one webhook has
// failurePolicy Ignore, the validating one for the gate's own kinds, with
// /validate; webhook.validatePolicies=false removes it and nothing else.
func TestOnlyThePolicyWebhookFailsOpen(t *testing.T) {
	t.Parallel()
	names := func(all []webhook) (fail, ignore []string) {
		for _, w := range all {
			if w.failurePolicy != nil && *w.failurePolicy == admissionregistrationv1.Ignore {
				ignore = append(ignore, w.kind+" "+w.name)
			} else {
				fail = append(fail, w.kind+" "+w.name)
			}
		}
		return fail, ignore
	}
	_, validating, all := webhooks(t, render(t))
	fail, ignore := names(all)
	if want := []string{"validating " + policyWebhookName}; !slices.Equal(ignore, want) {
		t.Errorf("webhooks failing open: %v, want %v", ignore, want)
	}
	for _, w := range validating.Webhooks {
		if w.Name != policyWebhookName {
			continue
		}
		if w.ObjectSelector != nil && (len(w.ObjectSelector.MatchLabels) > 0 || len(w.ObjectSelector.MatchExpressions) > 0) {
			t.Errorf("%s: objectSelector %v, want none", w.Name, w.ObjectSelector)
		}
		if s := w.ClientConfig.Service; s == nil || s.Path == nil || *s.Path != "/validate" {
			t.Errorf("%s: clientConfig %+v, want the Service's /validate", w.Name, w.ClientConfig)
		}
	}
	_, _, off := webhooks(t, render(t, "--set", "webhook.validatePolicies=false"))
	offFail, offIgnore := names(off)
	if len(offIgnore) != 0 || !slices.Equal(offFail, fail) {
		t.Errorf("webhook.validatePolicies=false: fail closed %v, open %v; want %v and none", offFail, offIgnore, fail)
	}
}

// checkNamespaceSelector: kube-system, the gate's namespace and the default
// system namespaces are excluded by kubernetes.io/metadata.name, which
// tenants cannot set, and by nothing a tenant controls.
func checkNamespaceSelector(t *testing.T, w webhook) {
	t.Helper()
	want := map[string]any{"matchExpressions": []any{map[string]any{
		"key": "kubernetes.io/metadata.name", "operator": "NotIn",
		"values": defaultExcluded(),
	}}}
	if diff := cmp.Diff(want, toMap(t, w.namespaceSelector)); diff != "" {
		t.Errorf("%s %s: namespaceSelector (-want +got):\n%s", w.kind, w.name, diff)
	}
}

// webhook.namespaceSelector narrows every webhook to labelled namespaces
// (opt-in rollout) and is ANDed with the exclusion by name: the exclusion
// stays the first matchExpression, the extra ones follow it.
func TestWebhookNamespaceSelector(t *testing.T) {
	t.Parallel()
	_, _, all := webhooks(t, render(t,
		"--set", "config.pinning.workloadTemplates=true",
		"--set-json", `webhook.namespaceSelector={"matchLabels":{"signgate.dev/enforce":"true"},"matchExpressions":[{"key":"tier","operator":"NotIn","values":["sandbox"]}]}`))
	want := map[string]any{
		"matchLabels": map[string]any{"signgate.dev/enforce": "true"},
		"matchExpressions": []any{
			map[string]any{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": defaultExcluded()},
			map[string]any{"key": "tier", "operator": "NotIn", "values": []any{"sandbox"}},
		},
	}
	if len(all) != 5 {
		t.Fatalf("%d webhooks, want 5 (pods and workloads, mutating and validating; policies)", len(all))
	}
	for _, w := range all {
		if w.name == policyWebhookName {
			checkPolicyWebhook(t, w) // not narrowed: policies are not pods
			continue
		}
		if diff := cmp.Diff(want, toMap(t, w.namespaceSelector)); diff != "" {
			t.Errorf("%s %s: namespaceSelector (-want +got):\n%s", w.kind, w.name, diff)
		}
	}
}

func TestWebhookRulesCoverEveryImageSource(t *testing.T) {
	t.Parallel()
	type rule struct{ group, resource string }
	pods := []rule{{"", "pods"}, {"", "pods/ephemeralcontainers"}}
	workloads := []rule{{"apps", "deployments"}, {"apps", "replicasets"}, {"apps", "statefulsets"}, {"apps", "daemonsets"},
		{"batch", "jobs"}, {"batch", "cronjobs"}, {"", "replicationcontrollers"}, {"", "podtemplates"}}
	tests := []struct {
		name         string
		args         []string
		wantMutating []rule
	}{
		{name: "pinning pods only", wantMutating: pods},
		{name: "pinning workload templates", args: []string{"--set", "config.pinning.workloadTemplates=true"}, wantMutating: append(slices.Clone(pods), workloads...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, all := webhooks(t, render(t, tt.args...))
			got := map[string][]rule{}
			for _, w := range all {
				kind := w.kind
				if w.name == policyWebhookName {
					kind = "policies"
				}
				for _, r := range w.rules {
					if !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) {
						t.Errorf("%s %s: operations %v, want [CREATE UPDATE]", w.kind, w.name, r.Operations)
					}
					for _, g := range r.APIGroups {
						for _, res := range r.Resources {
							got[kind] = append(got[kind], rule{g, res})
						}
					}
				}
			}
			sortRules := func(a, b rule) int { return strings.Compare(a.group+"/"+a.resource, b.group+"/"+b.resource) }
			want := map[string][]rule{"mutating": tt.wantMutating, "validating": append(slices.Clone(pods), workloads...),
				"policies": {{"signgate.dev", "clusterimagepolicies"}, {"signgate.dev", "imagepolicies"}, {"signgate.dev", "trustroots"}}}
			for kind := range want {
				slices.SortFunc(want[kind], sortRules)
				slices.SortFunc(got[kind], sortRules)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(rule{})); diff != "" {
				t.Errorf("webhook rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWebhookClientConfig(t *testing.T) {
	t.Parallel()
	t.Run("service with the chart's CA", func(t *testing.T) {
		t.Parallel()
		objs := render(t)
		_, _, all := webhooks(t, objs)
		secret := one[corev1.Secret](t, objs, "Secret")
		for _, w := range all {
			s := w.clientConfig.Service
			wantPath := map[string]string{"mutating": "/mutate", "validating": "/validate"}[w.kind]
			if w.clientConfig.URL != nil || s == nil || s.Namespace != releaseNamespace || s.Path == nil || *s.Path != wantPath || s.Port == nil || *s.Port != 443 {
				t.Errorf("%s %s: clientConfig %+v, want service %s/signgate port 443 path %s", w.kind, w.name, w.clientConfig, releaseNamespace, wantPath)
			}
			if !bytes.Equal(w.clientConfig.CABundle, secret.Data["ca.crt"]) {
				t.Errorf("%s %s: caBundle is not the Secret's ca.crt", w.kind, w.name)
			}
		}
		checkServingCert(t, secret)
	})
	t.Run("url", func(t *testing.T) {
		t.Parallel()
		_, _, all := webhooks(t, render(t, "--set", "webhook.url=https://127.0.0.1:8443/", "--set", "webhook.caBundle="+base64.StdEncoding.EncodeToString([]byte("test-ca"))))
		for _, w := range all {
			want := map[string]string{"mutating": "https://127.0.0.1:8443/mutate", "validating": "https://127.0.0.1:8443/validate"}[w.kind]
			if w.clientConfig.Service != nil || w.clientConfig.URL == nil || *w.clientConfig.URL != want || string(w.clientConfig.CABundle) != "test-ca" {
				t.Errorf("%s %s: clientConfig %+v, want url %s with the given caBundle", w.kind, w.name, w.clientConfig, want)
			}
		}
	})
	t.Run("cert-manager", func(t *testing.T) {
		t.Parallel()
		objs := render(t, "--set", "certManager.enabled=true")
		mutating, validating, all := webhooks(t, objs)
		for _, annotations := range []map[string]string{mutating.Annotations, validating.Annotations} {
			if got := annotations["cert-manager.io/inject-ca-from"]; got != releaseNamespace+"/signgate" {
				t.Errorf("inject-ca-from = %q, want %s/signgate", got, releaseNamespace)
			}
		}
		for _, w := range all {
			if len(w.clientConfig.CABundle) != 0 {
				t.Errorf("%s %s: caBundle set with cert-manager; cainjector owns it", w.kind, w.name)
			}
		}
		if n := len(kinds(objs, "Secret")); n != 0 {
			t.Errorf("%d Secrets rendered with cert-manager, want 0 (the Certificate makes it)", n)
		}
		if n := len(kinds(objs, "Certificate")); n != 2 {
			t.Errorf("%d Certificates, want 2 (CA and serving)", n)
		}
	})
}

// checkServingCert: the generated serving certificate is signed by the CA in
// the Secret and valid for the Service's DNS name the API server dials.
func checkServingCert(t *testing.T, secret corev1.Secret) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data["ca.crt"]) {
		t.Fatal("ca.crt holds no PEM certificate")
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		t.Fatal("tls.crt holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "signgate." + releaseNamespace + ".svc"})
	if err != nil {
		t.Errorf("serving certificate: %v", err)
	}
}

func TestRBACLeastPrivilege(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, sc.args...)
			tenantSecrets := !slices.Contains(sc.args, "rbac.tenantSecretRefs=false")
			podPullSecrets := slices.Contains(sc.args, "registryCredentials.podPullSecrets=true")
			audit := slices.Contains(sc.args, "audit.enabled=true")
			var gate rbacv1.ClusterRole
			for _, o := range kinds(objs, "ClusterRole") {
				cr := decode[rbacv1.ClusterRole](t, o)
				checkNoWildcards(t, "ClusterRole "+cr.Name, cr.Rules)
				checkGetOnly(t, "ClusterRole "+cr.Name, cr.Rules, "secrets", "serviceaccounts")
				if cr.Name == "signgate" {
					gate = cr
				}
			}
			role := one[rbacv1.Role](t, objs, "Role")
			checkNoWildcards(t, "Role", role.Rules)
			checkGetOnly(t, "Role", role.Rules, "secrets", "serviceaccounts")
			wantRole := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"get"}}}
			if audit {
				wantRole = append(wantRole, auditRoleRules("signgate-audit")...)
			}
			if diff := cmp.Diff(wantRole, role.Rules); diff != "" {
				t.Errorf("Role in the release namespace (-want +got):\n%s", diff)
			}
			if role.Namespace != releaseNamespace {
				t.Errorf("Role namespace %q, want %q", role.Namespace, releaseNamespace)
			}
			want := []rbacv1.PolicyRule{
				{APIGroups: []string{"signgate.dev"}, Resources: []string{"clusterimagepolicies", "imagepolicies", "trustroots"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"signgate.dev"}, Resources: []string{"clusterimagepolicies/status", "imagepolicies/status"}, Verbs: []string{"update", "patch"}},
				{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
			}
			// One Secret rule for both tenantSecretRefs and podPullSecrets.
			if tenantSecrets || podPullSecrets {
				want = append(want, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
			}
			if podPullSecrets {
				want = append(want, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}})
			}
			if audit {
				want = append(want, auditClusterRules...)
			}
			if diff := cmp.Diff(want, gate.Rules); diff != "" {
				t.Errorf("gate ClusterRole (-want +got):\n%s", diff)
			}
		})
	}
}

// checkGetOnly: rules grant resources (core group) no verb but get: the
// gate reads Secrets and ServiceAccounts by name, never lists or watches
// them.
func checkGetOnly(t *testing.T, what string, rules []rbacv1.PolicyRule, resources ...string) {
	t.Helper()
	for _, r := range rules {
		if !slices.Contains(r.APIGroups, "") || !slices.ContainsFunc(r.Resources, func(res string) bool { return slices.Contains(resources, res) }) {
			continue
		}
		if !slices.Equal(r.Verbs, []string{"get"}) {
			t.Errorf("%s: rule %+v grants %v on %v, want get only", what, r, r.Verbs, r.Resources)
		}
	}
}

func checkNoWildcards(t *testing.T, what string, rules []rbacv1.PolicyRule) {
	t.Helper()
	for _, r := range rules {
		for _, s := range slices.Concat(r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs) {
			if strings.Contains(s, "*") {
				t.Errorf("%s: wildcard %q in rule %+v", what, s, r)
			}
		}
	}
}

func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	np := one[networkingv1.NetworkPolicy](t, render(t), "NetworkPolicy")
	var ingress []int
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			ingress = append(ingress, p.Port.IntValue())
		}
	}
	if diff := cmp.Diff([]int{8443, 9090}, ingress); diff != "" {
		t.Errorf("ingress ports (-want +got):\n%s", diff)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Egress) != 3 {
		t.Errorf("egress = %+v, want 3 rules (DNS, registries, API server)", np.Spec.Egress)
	}

	// With cloud credentials, a fourth rule reaches the node's metadata
	// and credential endpoints, which the registries' rule excludes.
	np = one[networkingv1.NetworkPolicy](t, render(t, cloudCredentialsArgs...), "NetworkPolicy")
	if len(np.Spec.Egress) != 4 {
		t.Fatalf("egress with cloudCredentials = %+v, want 4 rules", np.Spec.Egress)
	}
	var cidrs []string
	for _, peer := range np.Spec.Egress[3].To {
		cidrs = append(cidrs, peer.IPBlock.CIDR)
	}
	for _, want := range []string{"169.254.169.254/32", "169.254.169.252/32", "169.254.170.23/32"} {
		if !slices.Contains(cidrs, want) {
			t.Errorf("cloud credentials egress %v lacks %s", cidrs, want)
		}
	}
}

func TestConfigMapHoldsGateConfiguration(t *testing.T) {
	t.Parallel()
	cm := one[corev1.ConfigMap](t, render(t, "--set", "config.unmatchedImages=warn"), "ConfigMap")
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if cfg["apiVersion"] != "signgate.dev/v1alpha1" || cfg["kind"] != "GateConfiguration" || cfg["unmatchedImages"] != "warn" {
		t.Errorf("config.yaml = %v, want a GateConfiguration with unmatchedImages warn", cfg)
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  string
	}{
		{"timeout above the API server's 30s", "webhook.timeoutSeconds=31"},
		{"unknown unmatchedImages", "config.unmatchedImages=maybe"},
		{"root user", "securityContext.runAsUser=0"},
		{"misspelt value", "replicas=3"},
		{"plain-HTTP webhook url", "webhook.url=http://127.0.0.1:8443"},
		{"unknown hardening check", "config.hardening[0].check=privileged"},
		{"tag in the digest", "image.digest=latest"},
		{"unknown namespaceSelector field", "webhook.namespaceSelector.matchFields=x"},
		{"unknown namespaceSelector operator", "webhook.namespaceSelector.matchExpressions[0].operator=Gt"},
		{"shutdownDelay without a unit", "shutdownDelay=5"},
		{"registry credentials Secret name with a slash", "registryCredentials.existingSecret=a/b"},
		{"podPullSecrets not a boolean", "registryCredentials.podPullSecrets=yes"},
		{"unknown registryCredentials key", "registryCredentials.pullSecrets=true"},
		{"registry CA ConfigMap name with a slash", "registryCAs.existingConfigMap=a/b"},
		{"unknown registryCAs key", "registryCAs.existingSecret=x"},
		{"tokenRealm without its realm", `config.registry.tokenRealms[0].registry=quay.io`},
		{"mirrors of a registry not a list", `config.registry.mirrors.docker\.io=mirror.corp.example`},
		{"unknown cloud credentials provider", "config.registry.cloudCredentials[0].provider=oracle"},
		{"cloud credentials without provider", "config.registry.cloudCredentials[0].registries[0]=gcr.io"},
		{"registry CA file with a relative path", `config.registry.certificateAuthorities.registry\.corp\.example=corp.pem`},
		{"crds.install not a boolean", "crds.install=yes"},
		{"unknown crds key", "crds.keep=true"},
		{"the removed rbac.pullSecrets", "rbac.pullSecrets=true"},
		{"publicGoodTrustRoot.enabled not a boolean", "sigstore.publicGoodTrustRoot.enabled=yes"},
		{"unknown publicGoodTrustRoot key", "sigstore.publicGoodTrustRoot.url=https://example.com"},
		{"unknown sigstore key", "sigstore.trustRoots=x"},
		{"plain-HTTP TUF mirror", "sigstore.publicGoodTrustRoot.mirror=http://tuf.example.com"},
		{"TUF mirror with credentials", "sigstore.publicGoodTrustRoot.mirror=https://user@tuf.example.com"},
		{"refreshInterval without a unit", "sigstore.publicGoodTrustRoot.refreshInterval=60"},
		{"zero refreshInterval", "sigstore.publicGoodTrustRoot.refreshInterval=0s"},
		{"TrustRoot name with a slash", "sigstore.publicGoodTrustRoot.name=a/b"},
		{"empty TrustRoot name", "sigstore.publicGoodTrustRoot.name="},
		{"unknown mutate failurePolicy", "webhook.failurePolicy.mutate=Open"},
		{"lower-case validate failurePolicy", "webhook.failurePolicy.validate=ignore"},
		{"unknown failurePolicy key", "webhook.failurePolicy.policies=Fail"},
		{"failurePolicy as a string", "webhook.failurePolicy=Ignore"},
		{"webhook annotation not a string", "webhook.annotations.a=1"},
		{"service annotation not a string", "service.annotations.a=true"},
		{"certManager.namespace not a name", "certManager.namespace=Cert_Manager"},
		{"image.registry with a scheme", "image.registry=https://mirror.example"},
		{"image.registry with a trailing slash", "image.registry=mirror.example/"},
		{"hostNetwork not a boolean", "hostNetwork=yes"},
		{"hostPath extra volume", "extraVolumes[0].name=host,extraVolumes[0].hostPath.path=/"},
		{"extra volume without a source", "extraVolumes[0].name=empty"},
		{"extra volume named like the chart's", "extraVolumes[0].name=tls,extraVolumes[0].emptyDir.medium=Memory"},
		{"extra volume with two sources", "extraVolumes[0].name=two,extraVolumes[0].emptyDir.medium=Memory,extraVolumes[0].secret.secretName=s"},
		{"extra mount without mountPath", "extraVolumeMounts[0].name=x"},
		{"extra mount over the chart's", "extraVolumeMounts[0].name=x,extraVolumeMounts[0].mountPath=/tls"},
		{"extra mount with a relative path", "extraVolumeMounts[0].name=x,extraVolumeMounts[0].mountPath=etc"},
		{"extra mount with Bidirectional propagation", "extraVolumeMounts[0].name=x,extraVolumeMounts[0].mountPath=/x,extraVolumeMounts[0].mountPropagation=Bidirectional"},
		{"scrapeTimeout without a unit", "metrics.serviceMonitor.scrapeTimeout=10"},
		{"relabelings not a list", "metrics.serviceMonitor.relabelings=x"},
		{"unknown serviceMonitor key", "metrics.serviceMonitor.honorLabels=true"},
		{"audit.enabled not a boolean", "audit.enabled=yes"},
		{"zero audit interval", "audit.interval=0s"},
		{"audit interval without a unit", "audit.interval=3600"},
		{"zero audit leaseDuration", "audit.leaseDuration=0"},
		{"audit leaseDuration not a duration", "audit.leaseDuration=fifteen"},
		{"unknown audit key", "audit.leaseName=x"},
		{"installCRDs not a boolean", "audit.policyReports.installCRDs=yes"},
		{"unknown policyReports key", "audit.policyReports.install=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := helm(helmBinary(t), "--set", tt.set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded, want a schema error", tt.set)
			}
			if !strings.Contains(string(out), "schema") {
				t.Errorf("helm template --set %s failed without naming the schema:\n%s", tt.set, out)
			}
		})
	}
}

// object is one rendered manifest.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	raw []byte
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// renders memoizes `helm template` output per argument list: tests share
// renders so the suite runs helm once per value set.
var renders sync.Map // strings.Join(args, "\x00") → func() ([]byte, error)

// render runs `helm template` on the chart with args and splits the output.
func render(t *testing.T, args ...string) []object {
	t.Helper()
	bin := helmBinary(t)
	once, _ := renders.LoadOrStore(strings.Join(args, "\x00"), sync.OnceValues(func() ([]byte, error) {
		return helm(bin, args...)
	}))
	out, err := once.(func() ([]byte, error))()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	var objs []object
	for _, doc := range docSeparator.Split(string(out), -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if o.Kind == "" {
			continue // comments only
		}
		o.raw = []byte(doc)
		objs = append(objs, o)
	}
	return objs
}

// helm runs `helm template` on the chart; on failure the output includes stderr.
func helm(bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, append([]string{"template", "signgate", ".", "--namespace", releaseNamespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "bin", "helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		t.Skipf("chart tests need %s: run `make chart-check` (or `make test`, which builds it first)", p)
	}
	return p
}

func kinds(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// one decodes the single object of kind.
func one[T any](t *testing.T, objs []object, kind string) T {
	t.Helper()
	found := kinds(objs, kind)
	if len(found) != 1 {
		t.Fatalf("rendered %d %s objects, want 1", len(found), kind)
	}
	return decode[T](t, found[0])
}

func decode[T any](t *testing.T, o object) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict(o.raw, &v); err != nil {
		t.Fatalf("decode %s %s: %v", o.Kind, o.Metadata.Name, err)
	}
	return v
}

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(fmt.Errorf("re-decode %T: %w", v, err))
	}
	return m
}

// registryCredentials.existingSecret: the dockerconfigjson Secret is
// mounted read-only as $DOCKER_CONFIG/config.json; nothing is mounted and
// DOCKER_CONFIG is unset without it.
func TestRegistryCredentials(t *testing.T) {
	t.Parallel()
	dockerConfig := func(c corev1.Container) string {
		for _, e := range c.Env {
			if e.Name == "DOCKER_CONFIG" {
				return e.Value
			}
		}
		return ""
	}

	d := one[appsv1.Deployment](t, render(t), "Deployment")
	if got := dockerConfig(d.Spec.Template.Spec.Containers[0]); got != "" {
		t.Errorf("DOCKER_CONFIG = %q without registryCredentials, want unset", got)
	}

	d = one[appsv1.Deployment](t, render(t, "--set", "registryCredentials.existingSecret=regcred"), "Deployment")
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	dir := dockerConfig(c)
	if dir == "" {
		t.Fatal("DOCKER_CONFIG not set with registryCredentials.existingSecret")
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.Name == "registry-credentials" {
			mounted = m.MountPath == dir && m.ReadOnly
		}
	}
	if !mounted {
		t.Errorf("volume registry-credentials not mounted read-only at %s: %+v", dir, c.VolumeMounts)
	}
	var found bool
	for _, v := range spec.Volumes {
		if v.Name != "registry-credentials" {
			continue
		}
		found = true
		s := v.Secret
		if s == nil || s.SecretName != "regcred" || len(s.Items) != 1 || s.Items[0].Key != ".dockerconfigjson" || s.Items[0].Path != "config.json" {
			t.Errorf("registry-credentials volume = %+v, want Secret regcred, .dockerconfigjson as config.json", v.VolumeSource)
		}
	}
	if !found {
		t.Error("no registry-credentials volume")
	}
}

// trustRoot is the part of a rendered TrustRoot the chart sets.
type trustRoot struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		TUF struct {
			Mirror string `json:"mirror"`
			Root   struct {
				Inline string `json:"inline"`
			} `json:"root"`
			RefreshInterval string `json:"refreshInterval"`
		} `json:"tuf"`
	} `json:"spec"`
}

// sigstore.publicGoodTrustRoot: off by default (no trust root is assumed);
// on, one cluster-scoped TrustRoot whose TUF root is the chart's copy of
// Sigstore's public-good root.json, byte for byte.
func TestPublicGoodTrustRoot(t *testing.T) {
	t.Parallel()
	if n := len(kinds(render(t), "TrustRoot")); n != 0 {
		t.Errorf("%d TrustRoots rendered with default values, want 0", n)
	}
	if n := len(kinds(render(t, "--set", "sigstore.publicGoodTrustRoot.enabled=false", "--set", "sigstore.publicGoodTrustRoot.name=other"), "TrustRoot")); n != 0 {
		t.Errorf("%d TrustRoots rendered with enabled=false, want 0", n)
	}

	file, err := os.ReadFile(filepath.Join("files", "sigstore-public-good-root.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		Signed struct {
			Type    string `json:"_type"`
			Version int    `json:"version"`
			Roles   map[string]struct {
				Threshold int `json:"threshold"`
			} `json:"roles"`
		} `json:"signed"`
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(file, &root); err != nil {
		t.Fatalf("files/sigstore-public-good-root.json: %v", err)
	}
	if root.Signed.Type != "root" || root.Signed.Version < 1 || root.Signed.Roles["root"].Threshold < 1 || len(root.Signatures) == 0 {
		t.Fatalf("files/sigstore-public-good-root.json is not a signed TUF root: _type %q, version %d, roles %v, %d signatures",
			root.Signed.Type, root.Signed.Version, root.Signed.Roles, len(root.Signatures))
	}

	tests := []struct {
		name                          string
		args                          []string
		wantName, wantMirror, wantRef string
	}{
		{
			name:     "defaults",
			args:     []string{"--set", "sigstore.publicGoodTrustRoot.enabled=true"},
			wantName: "public-good", wantMirror: "https://tuf-repo-cdn.sigstore.dev", wantRef: "1h",
		},
		{
			name: "custom name, mirror and refreshInterval",
			args: []string{"--set", "sigstore.publicGoodTrustRoot.enabled=true",
				"--set", "sigstore.publicGoodTrustRoot.name=sigstore.mirror",
				"--set", "sigstore.publicGoodTrustRoot.mirror=https://tuf.mirror.example:8443/sigstore",
				"--set", "sigstore.publicGoodTrustRoot.refreshInterval=15m30s"},
			wantName: "sigstore.mirror", wantMirror: "https://tuf.mirror.example:8443/sigstore", wantRef: "15m30s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			found := kinds(render(t, tt.args...), "TrustRoot")
			if len(found) != 1 {
				t.Fatalf("rendered %d TrustRoots, want 1", len(found))
			}
			tr := decode[trustRoot](t, found[0])
			if tr.APIVersion != "signgate.dev/v1alpha1" || tr.Metadata.Name != tt.wantName || tr.Metadata.Namespace != "" {
				t.Errorf("TrustRoot %s %s/%s, want signgate.dev/v1alpha1 %s, cluster-scoped (no namespace)", tr.APIVersion, tr.Metadata.Namespace, tr.Metadata.Name, tt.wantName)
			}
			if tr.Metadata.Labels["app.kubernetes.io/part-of"] != "signgate" {
				t.Errorf("TrustRoot labels %v lack the chart's labels", tr.Metadata.Labels)
			}
			if tr.Spec.TUF.Mirror != tt.wantMirror || tr.Spec.TUF.RefreshInterval != tt.wantRef {
				t.Errorf("spec.tuf mirror %q refreshInterval %q, want %q and %q", tr.Spec.TUF.Mirror, tr.Spec.TUF.RefreshInterval, tt.wantMirror, tt.wantRef)
			}
			if tr.Spec.TUF.Root.Inline != string(file) {
				t.Errorf("spec.tuf.root.inline (%d bytes) differs from files/sigstore-public-good-root.json (%d bytes)", len(tr.Spec.TUF.Root.Inline), len(file))
			}
			if !json.Valid([]byte(tr.Spec.TUF.Root.Inline)) {
				t.Error("spec.tuf.root.inline is not valid JSON")
			}
		})
	}
}

// registryCredentials.podPullSecrets: off by default (no --pod-pull-secrets,
// no get on ServiceAccounts, Secrets only for tenantSecretRefs); on, serve
// gets --pod-pull-secrets ahead of extraArgs and the ClusterRole get on
// ServiceAccounts and one get rule on Secrets, also with tenantSecretRefs
// on. TestRBACLeastPrivilege checks the whole ClusterRole per scenario.
func TestPodPullSecrets(t *testing.T) {
	t.Parallel()
	gateRole := func(t *testing.T, objs []object) rbacv1.ClusterRole {
		t.Helper()
		for _, o := range kinds(objs, "ClusterRole") {
			if cr := decode[rbacv1.ClusterRole](t, o); cr.Name == "signgate" {
				return cr
			}
		}
		t.Fatal("no ClusterRole signgate")
		return rbacv1.ClusterRole{}
	}
	// grants counts the core-group rules on resource and says whether
	// one of them has verb.
	grants := func(rules []rbacv1.PolicyRule, resource, verb string) (n int, has bool) {
		for _, r := range rules {
			if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, resource) {
				n++
				has = has || slices.Contains(r.Verbs, verb)
			}
		}
		return n, has
	}
	tests := []struct {
		name         string
		args         []string
		wantFlag     bool
		wantSecrets  bool
		wantAccounts bool
	}{
		{name: "default", wantSecrets: true},
		{name: "off without tenantSecretRefs", args: []string{"--set", "rbac.tenantSecretRefs=false"}},
		{name: "on", args: []string{"--set", "registryCredentials.podPullSecrets=true"}, wantFlag: true, wantSecrets: true, wantAccounts: true},
		{name: "on without tenantSecretRefs", args: []string{"--set", "registryCredentials.podPullSecrets=true", "--set", "rbac.tenantSecretRefs=false"}, wantFlag: true, wantSecrets: true, wantAccounts: true},
		{name: "on with extraArgs", args: []string{"--set", "registryCredentials.podPullSecrets=true", "--set", "extraArgs[0]=--log-format=text"}, wantFlag: true, wantSecrets: true, wantAccounts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, tt.args...)
			args := one[appsv1.Deployment](t, objs, "Deployment").Spec.Template.Spec.Containers[0].Args
			if i := slices.Index(args, "--pod-pull-secrets"); (i >= 0) != tt.wantFlag {
				t.Errorf("serve args %v: --pod-pull-secrets present %v, want %v", args, i >= 0, tt.wantFlag)
			} else if j := slices.Index(args, "--log-format=text"); i >= 0 && j >= 0 && j < i {
				t.Errorf("serve args %v: --pod-pull-secrets after extraArgs, want before", args)
			}
			rules := gateRole(t, objs).Rules
			for _, c := range []struct {
				resource string
				want     bool
			}{{"secrets", tt.wantSecrets}, {"serviceaccounts", tt.wantAccounts}} {
				n, get := grants(rules, c.resource, "get")
				switch {
				case c.want && (n != 1 || !get):
					t.Errorf("ClusterRole: %d rules on %s (get %v), want exactly one with get:\n%+v", n, c.resource, get, rules)
				case !c.want && n != 0:
					t.Errorf("ClusterRole: %d rules on %s, want none:\n%+v", n, c.resource, rules)
				}
				for _, verb := range []string{"list", "watch"} {
					if _, has := grants(rules, c.resource, verb); has {
						t.Errorf("ClusterRole grants %s on %s, want get only", verb, c.resource)
					}
				}
			}
		})
	}
}
