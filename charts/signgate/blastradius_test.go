package chart_test

import (
	"bytes"
	"encoding/base64"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// helmTestPods decodes the Pods that are `helm test` hooks (other hooks
// may render Pods too), by name.
func helmTestPods(t *testing.T, objs []object) map[string]corev1.Pod {
	t.Helper()
	found := map[string]corev1.Pod{}
	for _, o := range kinds(objs, "Pod") {
		if p := decode[corev1.Pod](t, o); p.Annotations["helm.sh/hook"] == "test" {
			found[p.Name] = p
		}
	}
	return found
}

// helmTestPod decodes the `helm test` Pod whose name ends in suffix
// ("-test-config": test-webhook.yaml, "-test-probe": test-probe.yaml).
func helmTestPod(t *testing.T, objs []object, suffix string) corev1.Pod {
	t.Helper()
	var found []corev1.Pod
	for name, p := range helmTestPods(t, objs) {
		if strings.HasSuffix(name, suffix) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("rendered %d helm test Pods named *%s, want 1", len(found), suffix)
	}
	return found[0]
}

// excludedNames returns the NotIn values of a webhook's exclusion by name.
func excludedNames(t *testing.T, w webhook) []string {
	t.Helper()
	sel := toMap(t, w.namespaceSelector)
	exprs, _ := sel["matchExpressions"].([]any)
	if len(exprs) == 0 {
		t.Fatalf("%s %s: no matchExpressions in %v", w.kind, w.name, sel)
	}
	first, _ := exprs[0].(map[string]any)
	if first["key"] != "kubernetes.io/metadata.name" || first["operator"] != "NotIn" {
		t.Fatalf("%s %s: first matchExpression %v, want kubernetes.io/metadata.name NotIn", w.kind, w.name, first)
	}
	var out []string
	for _, v := range first["values"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// gateConfig decodes the GateConfiguration in the ConfigMap.
func gateConfig(t *testing.T, objs []object) map[string]any {
	t.Helper()
	cm := one[corev1.ConfigMap](t, objs, "ConfigMap")
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	return cfg
}

// The default install exempts the typical system namespaces: the
// GateConfiguration lists them (so `signgate check` with the installed
// configuration agrees with the gate) and every pod and workload webhook
// excludes them, with kube-system and the release namespace, by name.
// certManager.namespace joins the webhooks' list only with
// certManager.enabled; webhook.excludeNamespaces joins the webhooks only;
// setting config.exemptNamespaces replaces the defaults.
func TestExemptNamespaces(t *testing.T) {
	t.Parallel()
	withRelease := func(extra ...string) []string {
		return slices.Concat([]string{"kube-system", releaseNamespace}, systemNamespaces[1:], extra)
	}
	tests := []struct {
		name       string
		args       []string
		wantConfig []string
		wantHooks  []string
	}{
		{name: "default", wantConfig: systemNamespaces, wantHooks: withRelease()},
		{
			name:       "cert-manager in its default namespace (already listed)",
			args:       []string{"--set", "certManager.enabled=true"},
			wantConfig: systemNamespaces, wantHooks: withRelease(),
		},
		{
			name:       "cert-manager in another namespace",
			args:       []string{"--set", "certManager.enabled=true", "--set", "certManager.namespace=certs"},
			wantConfig: append(slices.Clone(systemNamespaces), "certs"), wantHooks: withRelease("certs"),
		},
		{
			name:       "certManager.namespace without cert-manager",
			args:       []string{"--set", "certManager.namespace=certs"},
			wantConfig: systemNamespaces, wantHooks: withRelease(),
		},
		{
			name:       "webhook.excludeNamespaces",
			args:       []string{"--set", "webhook.excludeNamespaces={team-infra,monitoring}"},
			wantConfig: systemNamespaces, wantHooks: withRelease("team-infra"),
		},
		{
			name:       "cert-manager elsewhere and webhook.excludeNamespaces",
			args:       []string{"--set", "certManager.enabled=true", "--set", "certManager.namespace=certs", "--set", "webhook.excludeNamespaces={team-infra}"},
			wantConfig: append(slices.Clone(systemNamespaces), "certs"), wantHooks: withRelease("certs", "team-infra"),
		},
		{
			name:       "config.exemptNamespaces replaced",
			args:       []string{"--set", "config.exemptNamespaces={kube-system,legacy}"},
			wantConfig: []string{"kube-system", "legacy"}, wantHooks: []string{"kube-system", releaseNamespace, "legacy"},
		},
		{
			name:       "config.exemptNamespaces emptied",
			args:       []string{"--set", "config.exemptNamespaces=null"},
			wantConfig: nil, wantHooks: []string{"kube-system", releaseNamespace},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--set", "config.pinning.workloadTemplates=true"}, tt.args...)
			objs := render(t, args...)
			var gotConfig []string
			if list, ok := gateConfig(t, objs)["exemptNamespaces"].([]any); ok {
				for _, v := range list {
					gotConfig = append(gotConfig, v.(string))
				}
			}
			if diff := cmp.Diff(tt.wantConfig, gotConfig); diff != "" {
				t.Errorf("GateConfiguration exemptNamespaces (-want +got):\n%s", diff)
			}
			_, _, all := webhooks(t, objs)
			if len(all) != 5 {
				t.Fatalf("%d webhooks, want 5", len(all))
			}
			for _, w := range all {
				if w.name == policyWebhookName {
					checkPolicyWebhook(t, w)
					continue
				}
				if diff := cmp.Diff(tt.wantHooks, excludedNames(t, w)); diff != "" {
					t.Errorf("%s %s: excluded namespaces (-want +got):\n%s", w.kind, w.name, diff)
				}
			}
		})
	}
}

// webhook.failurePolicy.mutate and .validate set the pod and workload
// webhooks of their configuration and nothing else: the policy webhook
// stays Ignore whatever they say. Defaults (Fail, Fail) are checked by
// TestWebhooksFailClosed for every scenario.
func TestFailurePolicyPerWebhook(t *testing.T) {
	t.Parallel()
	const fail, ignore = admissionregistrationv1.Fail, admissionregistrationv1.Ignore
	tests := []struct {
		name                   string
		args                   []string
		wantMutate, wantValida admissionregistrationv1.FailurePolicyType
	}{
		{name: "defaults", wantMutate: fail, wantValida: fail},
		{name: "explicit Fail", args: []string{"--set", "webhook.failurePolicy.mutate=Fail", "--set", "webhook.failurePolicy.validate=Fail"}, wantMutate: fail, wantValida: fail},
		{name: "mutate Ignore", args: []string{"--set", "webhook.failurePolicy.mutate=Ignore"}, wantMutate: ignore, wantValida: fail},
		{name: "validate Ignore", args: []string{"--set", "webhook.failurePolicy.validate=Ignore"}, wantMutate: fail, wantValida: ignore},
		{name: "both Ignore", args: []string{"--set", "webhook.failurePolicy.mutate=Ignore", "--set", "webhook.failurePolicy.validate=Ignore"}, wantMutate: ignore, wantValida: ignore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--set", "config.pinning.workloadTemplates=true"}, tt.args...)
			_, _, all := webhooks(t, render(t, args...))
			got := map[string]admissionregistrationv1.FailurePolicyType{}
			for _, w := range all {
				if w.failurePolicy == nil {
					t.Fatalf("%s %s: no failurePolicy", w.kind, w.name)
				}
				got[w.name] = *w.failurePolicy
			}
			want := map[string]admissionregistrationv1.FailurePolicyType{
				"pods.mutate.signgate.dev":        tt.wantMutate,
				"workloads.mutate.signgate.dev":   tt.wantMutate,
				"pods.validate.signgate.dev":      tt.wantValida,
				"workloads.validate.signgate.dev": tt.wantValida,
				policyWebhookName:                 ignore,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("failurePolicy per webhook (-want +got):\n%s", diff)
			}
		})
	}
}

// webhook.annotations land on both webhook configurations; with
// cert-manager the CA injection annotation is added and wins over a
// user-given one of the same key. Without either, no annotations at all.
func TestWebhookAnnotations(t *testing.T) {
	t.Parallel()
	inject := releaseNamespace + "/signgate"
	tests := []struct {
		name string
		args []string
		want map[string]string
	}{
		{name: "none"},
		{name: "user only", args: []string{"--set", "webhook.annotations.team=platform", "--set-string", "webhook.annotations.argocd\\.argoproj\\.io/sync-wave=-1"},
			want: map[string]string{"team": "platform", "argocd.argoproj.io/sync-wave": "-1"}},
		{name: "cert-manager only", args: []string{"--set", "certManager.enabled=true"},
			want: map[string]string{"cert-manager.io/inject-ca-from": inject}},
		{name: "both, cert-manager's key wins", args: []string{"--set", "certManager.enabled=true", "--set", "webhook.annotations.team=platform", "--set", "webhook.annotations.cert-manager\\.io/inject-ca-from=other/ca"},
			want: map[string]string{"team": "platform", "cert-manager.io/inject-ca-from": inject}},
		{name: "caBundle overrides cert-manager", args: []string{"--set", "certManager.enabled=true", "--set", "webhook.caBundle=dGVzdA==", "--set", "webhook.annotations.team=platform"},
			want: map[string]string{"team": "platform"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mutating, validating, _ := webhooks(t, render(t, tt.args...))
			for kind, got := range map[string]map[string]string{"mutating": mutating.Annotations, "validating": validating.Annotations} {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s annotations (-want +got):\n%s", kind, diff)
				}
			}
		})
	}
}

// image.registry prefixes image.repository (Deployment and `helm test`
// Pod alike); unset, the image is exactly repository:appVersion.
func TestImageRegistry(t *testing.T) {
	t.Parallel()
	chart, err := os.ReadFile("Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chart, &meta); err != nil || meta.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q, %v", meta.AppVersion, err)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "default", want: "ghcr.io/signgate/signgate:" + meta.AppVersion},
		{name: "repository and tag", args: []string{"--set", "image.repository=registry.example/platform/signgate", "--set", "image.tag=v1"}, want: "registry.example/platform/signgate:v1"},
		{name: "registry", args: []string{"--set", "image.registry=mirror.example:5000/proxy"}, want: "mirror.example:5000/proxy/ghcr.io/signgate/signgate:" + meta.AppVersion},
		{name: "registry, repository and digest", args: []string{"--set", "image.registry=mirror.example", "--set", "image.repository=platform/signgate", "--set", "image.digest=" + digest},
			want: "mirror.example/platform/signgate@" + digest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, tt.args...)
			d := one[appsv1.Deployment](t, objs, "Deployment")
			if got := d.Spec.Template.Spec.Containers[0].Image; got != tt.want {
				t.Errorf("Deployment image %q, want %q", got, tt.want)
			}
			for name, p := range helmTestPods(t, objs) {
				if got := p.Spec.Containers[0].Image; got != tt.want {
					t.Errorf("helm test Pod %s image %q, want %q", name, got, tt.want)
				}
			}
		})
	}
}

// hostNetwork: off, neither hostNetwork nor dnsPolicy is rendered; on, both,
// with ClusterFirstWithHostNet so cluster DNS still answers.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	spec := one[appsv1.Deployment](t, render(t), "Deployment").Spec.Template.Spec
	if spec.HostNetwork || spec.DNSPolicy != "" {
		t.Errorf("default: hostNetwork %v dnsPolicy %q, want false and unset", spec.HostNetwork, spec.DNSPolicy)
	}
	spec = one[appsv1.Deployment](t, render(t, "--set", "hostNetwork=true"), "Deployment").Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork=true: hostNetwork %v dnsPolicy %q, want true and ClusterFirstWithHostNet", spec.HostNetwork, spec.DNSPolicy)
	}
}

// extraVolumes and extraVolumeMounts follow the chart's own, verbatim; the
// gate stays restricted with them.
func TestExtraVolumes(t *testing.T) {
	t.Parallel()
	d := one[appsv1.Deployment](t, render(t,
		"--set-json", `extraVolumes=[{"name":"registry-ca","configMap":{"name":"corp-ca","items":[{"key":"ca.crt","path":"ca.crt"}]}},{"name":"cache","emptyDir":{"sizeLimit":"8Mi"}}]`,
		"--set-json", `extraVolumeMounts=[{"name":"registry-ca","mountPath":"/etc/ssl/corp","readOnly":true},{"name":"cache","mountPath":"/cache"}]`,
	), "Deployment")
	checkRestricted(t, d.Spec.Template)
	spec := d.Spec.Template.Spec
	var names []string
	for _, v := range spec.Volumes {
		names = append(names, v.Name)
	}
	if diff := cmp.Diff([]string{"tls", "config", "tmp", "registry-ca", "cache"}, names); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	wantCA := corev1.Volume{Name: "registry-ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "corp-ca"},
		Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
	}}}
	sizeLimit := resource.MustParse("8Mi")
	wantCache := corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &sizeLimit}}}
	if diff := cmp.Diff([]corev1.Volume{wantCA, wantCache}, spec.Volumes[3:]); diff != "" {
		t.Errorf("extra volumes (-want +got):\n%s", diff)
	}
	wantMounts := []corev1.VolumeMount{
		{Name: "tls", MountPath: "/tls", ReadOnly: true},
		{Name: "config", MountPath: "/config", ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "registry-ca", MountPath: "/etc/ssl/corp", ReadOnly: true},
		{Name: "cache", MountPath: "/cache"},
	}
	if diff := cmp.Diff(wantMounts, spec.Containers[0].VolumeMounts); diff != "" {
		t.Errorf("volumeMounts (-want +got):\n%s", diff)
	}
}

// service.annotations: on the Service only; none by default.
func TestServiceAnnotations(t *testing.T) {
	t.Parallel()
	if svc := one[corev1.Service](t, render(t), "Service"); svc.Annotations != nil {
		t.Errorf("default Service annotations %v, want none", svc.Annotations)
	}
	svc := one[corev1.Service](t, render(t, "--set", "service.annotations.a\\.example/b=c"), "Service")
	if diff := cmp.Diff(map[string]string{"a.example/b": "c"}, svc.Annotations); diff != "" {
		t.Errorf("Service annotations (-want +got):\n%s", diff)
	}
}

// metrics.serviceMonitor: off by default; on, one endpoint on the metrics
// port with interval, and scrapeTimeout, relabelings and
// metricRelabelings only when given.
func TestServiceMonitor(t *testing.T) {
	t.Parallel()
	if n := len(kinds(render(t), "ServiceMonitor")); n != 0 {
		t.Errorf("%d ServiceMonitors by default, want 0", n)
	}
	endpoint := func(t *testing.T, objs []object) (map[string]any, map[string]any) {
		t.Helper()
		found := kinds(objs, "ServiceMonitor")
		if len(found) != 1 {
			t.Fatalf("%d ServiceMonitors, want 1", len(found))
		}
		var sm struct {
			Metadata struct {
				Labels map[string]any `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Endpoints []map[string]any `json:"endpoints"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(found[0].raw, &sm); err != nil {
			t.Fatal(err)
		}
		if len(sm.Spec.Endpoints) != 1 {
			t.Fatalf("endpoints %v, want 1", sm.Spec.Endpoints)
		}
		return sm.Spec.Endpoints[0], sm.Metadata.Labels
	}
	ep, _ := endpoint(t, render(t, "--set", "metrics.serviceMonitor.enabled=true"))
	if diff := cmp.Diff(map[string]any{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s"}, ep); diff != "" {
		t.Errorf("default endpoint (-want +got):\n%s", diff)
	}
	ep, lbls := endpoint(t, render(t, "--set", "metrics.serviceMonitor.enabled=true",
		"--set", "metrics.serviceMonitor.interval=15s", "--set", "metrics.serviceMonitor.scrapeTimeout=10s",
		"--set", "metrics.serviceMonitor.labels.release=prom",
		"--set-json", `metrics.serviceMonitor.relabelings=[{"sourceLabels":["__meta_kubernetes_pod_node_name"],"targetLabel":"node"}]`,
		"--set-json", `metrics.serviceMonitor.metricRelabelings=[{"sourceLabels":["__name__"],"regex":"go_.*","action":"drop"}]`))
	want := map[string]any{
		"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "15s", "scrapeTimeout": "10s",
		"relabelings":       []any{map[string]any{"sourceLabels": []any{"__meta_kubernetes_pod_node_name"}, "targetLabel": "node"}},
		"metricRelabelings": []any{map[string]any{"sourceLabels": []any{"__name__"}, "regex": "go_.*", "action": "drop"}},
	}
	if diff := cmp.Diff(want, ep); diff != "" {
		t.Errorf("endpoint with options (-want +got):\n%s", diff)
	}
	if lbls["release"] != "prom" || lbls["app.kubernetes.io/part-of"] != "signgate" {
		t.Errorf("ServiceMonitor labels %v, want the chart's plus release=prom", lbls)
	}
}

// The `helm test` Pod: a test hook in the release namespace running the
// gate's image with `signgate check --offline` on the installed
// GateConfiguration (mounted from the release's ConfigMap), restricted
// (TestGateRunsRestricted), no service account token, and labels the
// gate's Deployment (and so its Service, PDB and NetworkPolicy) does not
// select.
func TestHelmTestPod(t *testing.T) {
	t.Parallel()
	objs := render(t, "--set", "imagePullSecrets[0].name=regcred")
	p := helmTestPod(t, objs, "-test-config")
	d := one[appsv1.Deployment](t, objs, "Deployment")
	cm := one[corev1.ConfigMap](t, objs, "ConfigMap")
	if p.Namespace != releaseNamespace || p.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("Pod %s/%s annotations %v, want a helm.sh/hook test in %s", p.Namespace, p.Name, p.Annotations, releaseNamespace)
	}
	if p.Annotations["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
		t.Errorf("hook-delete-policy %q, want before-hook-creation,hook-succeeded", p.Annotations["helm.sh/hook-delete-policy"])
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Matches(labels.Set(p.Labels)) {
		t.Errorf("test Pod labels %v match the gate's selector %v", p.Labels, d.Spec.Selector)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Errorf("restartPolicy %q automountServiceAccountToken %v, want Never and false", p.Spec.RestartPolicy, p.Spec.AutomountServiceAccountToken)
	}
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "regcred"}}, p.Spec.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
	c := p.Spec.Containers[0]
	gate := d.Spec.Template.Spec.Containers[0]
	if c.Image != gate.Image || c.ImagePullPolicy != gate.ImagePullPolicy {
		t.Errorf("test image %q (%s), want the gate's %q (%s)", c.Image, c.ImagePullPolicy, gate.Image, gate.ImagePullPolicy)
	}
	if diff := cmp.Diff([]string{"check", "--offline", "--config", "/config/config.yaml", "-f", "/config/config.yaml"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.VolumeMount{{Name: "config", MountPath: "/config", ReadOnly: true}}, c.VolumeMounts); diff != "" {
		t.Errorf("volumeMounts (-want +got):\n%s", diff)
	}
	wantVol := []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name}}}}}
	if diff := cmp.Diff(wantVol, p.Spec.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if p.Spec.HostNetwork || c.SecurityContext.Privileged == nil || *c.SecurityContext.Privileged {
		t.Errorf("test Pod hostNetwork %v privileged %v, want neither", p.Spec.HostNetwork, ptr.Deref(c.SecurityContext.Privileged, true))
	}
	// hostNetwork is the gate's, never the test Pod's.
	for name, p := range helmTestPods(t, render(t, "--set", "hostNetwork=true")) {
		if p.Spec.HostNetwork {
			t.Errorf("hostNetwork=true put the test Pod %s on the host network", name)
		}
	}
}

// The probe `helm test` Pod (test-probe.yaml): `signgate probe` at the
// Service the webhook configurations name (or webhook.url), trusting the
// CA they trust (the TLS Secret's ca.crt, of which it mounts nothing else,
// or webhook.caBundle through the downward API), with the conventions of
// the other test Pod. Not rendered with webhook.clientCA: it has no
// client certificate.
func TestHelmTestProbePod(t *testing.T) {
	t.Parallel()
	secretCA := []corev1.Volume{{Name: "ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: "signgate-tls", Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}}}}
	tests := []struct {
		name     string
		args     []string
		url      string
		volumes  []corev1.Volume
		caBundle string // the annotation the downward API mounts
	}{
		{name: "default", url: "https://signgate.signgate-system.svc:443", volumes: secretCA},
		{name: "certManager", args: []string{"--set", "certManager.enabled=true"}, url: "https://signgate.signgate-system.svc:443", volumes: secretCA},
		{name: "service port", args: []string{"--set", "service.port=8443"}, url: "https://signgate.signgate-system.svc:8443", volumes: secretCA},
		{
			name: "webhook.url and caBundle", url: "https://127.0.0.1:8443",
			args: []string{"--set", "webhook.url=https://127.0.0.1:8443/", "--set", "webhook.caBundle=" + base64.StdEncoding.EncodeToString([]byte("test-ca\n"))},
			volumes: []corev1.Volume{{Name: "ca", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "ca.crt", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['signgate.dev/ca-bundle']"}}}}}}},
			caBundle: "test-ca\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, tt.args...)
			p := helmTestPod(t, objs, "-test-probe")
			d := one[appsv1.Deployment](t, objs, "Deployment")
			if p.Namespace != releaseNamespace || p.Annotations["helm.sh/hook"] != "test" || p.Annotations["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
				t.Errorf("Pod %s/%s annotations %v, want a helm.sh/hook test deleted before creation and on success, in %s", p.Namespace, p.Name, p.Annotations, releaseNamespace)
			}
			if got := p.Annotations["signgate.dev/ca-bundle"]; got != tt.caBundle {
				t.Errorf("annotation signgate.dev/ca-bundle %q, want %q", got, tt.caBundle)
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(labels.Set(p.Labels)) {
				t.Errorf("test Pod labels %v match the gate's selector %v", p.Labels, d.Spec.Selector)
			}
			if p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
				t.Errorf("restartPolicy %q automountServiceAccountToken %v, want Never and false", p.Spec.RestartPolicy, p.Spec.AutomountServiceAccountToken)
			}
			c := p.Spec.Containers[0]
			gate := d.Spec.Template.Spec.Containers[0]
			if c.Image != gate.Image || c.ImagePullPolicy != gate.ImagePullPolicy {
				t.Errorf("test image %q (%s), want the gate's %q (%s)", c.Image, c.ImagePullPolicy, gate.Image, gate.ImagePullPolicy)
			}
			if diff := cmp.Diff([]string{"probe", "--url", tt.url, "--ca-file", "/tls/ca.crt"}, c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]corev1.VolumeMount{{Name: "ca", MountPath: "/tls", ReadOnly: true}}, c.VolumeMounts); diff != "" {
				t.Errorf("volumeMounts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.volumes, p.Spec.Volumes); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
		})
	}

	// The TLS Secret the Pod mounts is the one the gate serves from.
	objs := render(t)
	d := one[appsv1.Deployment](t, objs, "Deployment")
	if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "signgate-tls"
	}) {
		t.Errorf("the gate does not serve from Secret signgate-tls: volumes %+v", d.Spec.Template.Spec.Volumes)
	}

	// With webhook.clientCA only the configuration test runs.
	pods := helmTestPods(t, render(t, "--set", "webhook.clientCA.existingSecret=apiserver-client-ca"))
	if len(pods) != 1 {
		t.Errorf("webhook.clientCA: helm test Pods %v, want only the configuration test", slices.Sorted(maps.Keys(pods)))
	}
	helmTestPod(t, render(t, "--set", "webhook.clientCA.existingSecret=apiserver-client-ca"), "-test-config")
}

// notes renders NOTES.txt: helm template does not, so a copy of the chart
// gets a ConfigMap carrying NOTES.txt's text, rendered with the same values.
func notes(t *testing.T, args ...string) string {
	t.Helper()
	bin := helmBinary(t)
	dir := filepath.Join(t.TempDir(), "signgate")
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "_notes_test.tpl"), append(append([]byte(`{{- define "signgate.notesForTest" }}`), text...), "{{- end }}"...), 0o644); err != nil {
		t.Fatal(err)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include \"signgate.notesForTest\" . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "notes-for-test.yaml"), []byte(cm), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runHelm(bin, dir, append(args, "--show-only", "templates/notes-for-test.yaml")...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	var obj struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(out, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.Data["notes"]
}

// NOTES.txt says what the install enforces: the exempt namespaces, the
// failurePolicy of each webhook kind, what happens to unmatched images,
// the Pod Security defaults, and the values that start in warn.
func TestNotes(t *testing.T) {
	t.Parallel()
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	tests := []struct {
		name          string
		args          []string
		want, notWant []string
	}{
		{
			name: "default",
			want: []string{
				"every namespace except these 16, which the API server never sends to the gate",
				strings.Join(slices.Concat([]string{"kube-system", releaseNamespace}, systemNamespaces[1:]), ", "),
				"failurePolicy Fail on the validating webhooks (signatures, Pod Security): while the gate does not answer, pod creation there is refused.",
				"failurePolicy Fail on the mutating webhooks",
				"The chart installs no policy: until you add one, every image is unmatched, and unmatched images are DENIED (config.unmatchedImages=deny).",
				"held to enforce=restricted (config.podSecurity.defaults); workload templates: enforce (config.podSecurity.workloads).",
				"--set config.unmatchedImages=warn",
				"--set config.podSecurity.defaults.enforce=privileged",
				"--set config.podSecurity.workloads=warn",
				"`mode: warn`",
				"refused at apply (failurePolicy Ignore)",
				"helm test signgate -n " + releaseNamespace,
			},
			notWant: []string{"webhook.namespaceSelector", "hostNetwork", "UNVERIFIED"},
		},
		{
			name: "warn, Ignore, opt-in selector, cert-manager elsewhere, hostNetwork",
			args: []string{"--set", "config.unmatchedImages=warn", "--set", "webhook.failurePolicy.validate=Ignore",
				"--set", "webhook.failurePolicy.mutate=Ignore", "--set", "certManager.enabled=true", "--set", "certManager.namespace=certs",
				"--set", "webhook.validatePolicies=false", "--set", "hostNetwork=true",
				"--set-json", `webhook.namespaceSelector={"matchLabels":{"signgate.dev/enforce":"true"}}`},
			want: []string{
				"every namespace except these 17",
				"flux-system, argocd, certs",
				`only namespaces matching webhook.namespaceSelector: {"matchLabels":{"signgate.dev/enforce":"true"}}`,
				"failurePolicy Ignore on the validating webhooks (signatures, Pod Security): while the gate does not answer, pods are admitted UNVERIFIED.",
				"failurePolicy Ignore on the mutating webhooks",
				"unmatched images are admitted with a warning (config.unmatchedImages=warn).",
				"hostNetwork is on. The gate listens on ports 8443 and 9090 of every node",
			},
			notWant: []string{"refused at apply", "pod creation there is refused"},
		},
		{
			name: "allow",
			args: []string{"--set", "config.unmatchedImages=allow"},
			want: []string{"unmatched images are admitted without a check (config.unmatchedImages=allow)."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := squash(notes(t, tt.args...))
			for _, w := range tt.want {
				if !strings.Contains(got, squash(w)) {
					t.Errorf("NOTES lack %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("NOTES contain %q:\n%s", w, got)
				}
			}
		})
	}
}

// runHelm runs `helm template` on the chart in dir; on failure the output
// includes stderr.
func runHelm(bin, dir string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, append([]string{"template", "signgate", dir, "--namespace", releaseNamespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

// TestConfigChecksumRollsTheGate: the pod template carries the
// configuration's checksum, so a changed configuration (cache and
// registry settings are read at start) rolls the Deployment; an unrelated
// value does not.
func TestConfigChecksumRollsTheGate(t *testing.T) {
	t.Parallel()
	sum := func(args ...string) string {
		d := one[appsv1.Deployment](t, render(t, args...), "Deployment")
		return d.Spec.Template.Annotations["checksum/config"]
	}
	base := sum()
	if len(base) != 64 {
		t.Fatalf("checksum/config = %q, want a SHA-256", base)
	}
	if got := sum("--set", "config.cache.maxEntries=123"); got == base {
		t.Error("a cache setting changed the configuration but not the checksum")
	}
	if got := sum("--set", "replicaCount=3"); got != base {
		t.Error("replicaCount changed the configuration checksum")
	}
	if got := sum("--set", "podAnnotations.team=a"); got != base {
		t.Error("podAnnotations changed the configuration checksum")
	}
}
