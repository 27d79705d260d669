package chart_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// policyReportCRDs are the Policy WG CRDs (wgpolicyk8s.io) the chart ships
// in files/ for the background audit (audit.enabled), by file.
var policyReportCRDs = map[string]struct {
	name, kind, plural, singular, shortName, scope string
}{
	"wgpolicyk8s.io_policyreports.yaml":        {"policyreports.wgpolicyk8s.io", "PolicyReport", "policyreports", "policyreport", "polr", "Namespaced"},
	"wgpolicyk8s.io_clusterpolicyreports.yaml": {"clusterpolicyreports.wgpolicyk8s.io", "ClusterPolicyReport", "clusterpolicyreports", "clusterpolicyreport", "cpolr", "Cluster"},
}

// auditClusterRules are the rules audit.enabled adds to the gate's
// ClusterRole: list and watch the pods and every workload kind with a pod
// template, and write PolicyReports (no ClusterPolicyReports).
var auditClusterRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "replicationcontrollers"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, Verbs: []string{"get", "list", "create", "update", "delete"}},
}

// auditRoleRules are the rules audit.enabled adds to the gate's Role in the
// release namespace: the leader election Lease, get and update by name
// (create cannot be limited by name).
func auditRoleRules(lease string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{lease}, Verbs: []string{"get", "update"}},
	}
}

// gateRoles returns the gate's ClusterRole (named like the Deployment) and
// its Role, checking every ClusterRole and Role for wildcards.
func gateRoles(t *testing.T, objs []object, name string) (rbacv1.ClusterRole, rbacv1.Role) {
	t.Helper()
	var gate rbacv1.ClusterRole
	for _, o := range kinds(objs, "ClusterRole") {
		cr := decode[rbacv1.ClusterRole](t, o)
		checkNoWildcards(t, "ClusterRole "+cr.Name, cr.Rules)
		if cr.Name == name {
			gate = cr
		}
	}
	if gate.Name == "" {
		t.Fatalf("no ClusterRole %s rendered", name)
	}
	role := one[rbacv1.Role](t, objs, "Role")
	checkNoWildcards(t, "Role", role.Rules)
	return gate, role
}

func hasRuleFor(rules []rbacv1.PolicyRule, group string) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.APIGroups, group) })
}

func auditArgs(args []string) []string {
	var out []string
	for i, a := range args {
		if strings.HasPrefix(a, "--audit-") {
			out = append(out, a)
			if i+1 < len(args) {
				out = append(out, args[i+1])
			}
		}
	}
	return out
}

func checkPodName(t *testing.T, c corev1.Container) {
	t.Helper()
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Errorf("env %+v has no POD_NAME from metadata.name (the audit's leader election identity)", c.Env)
	}
}

// Off by default: no audit flags, no PolicyReport CRDs, no RBAC for
// workloads, reports or Leases. POD_NAME is always set (harmless).
func TestAuditDisabledByDefault(t *testing.T) {
	t.Parallel()
	objs := render(t)
	d := one[appsv1.Deployment](t, objs, "Deployment")
	c := d.Spec.Template.Spec.Containers[0]
	if got := auditArgs(c.Args); len(got) != 0 {
		t.Errorf("default args carry %v, want no --audit-* flag (audit.enabled defaults to false)", got)
	}
	checkPodName(t, c)
	for _, o := range kinds(objs, "CustomResourceDefinition") {
		if strings.HasSuffix(o.Metadata.Name, ".wgpolicyk8s.io") {
			t.Errorf("default renders CRD %s, want none (audit.enabled is false)", o.Metadata.Name)
		}
	}
	gate, role := gateRoles(t, objs, "signgate")
	for _, g := range []string{"apps", "batch", "wgpolicyk8s.io"} {
		if hasRuleFor(gate.Rules, g) {
			t.Errorf("default ClusterRole has a rule for group %q: %+v", g, gate.Rules)
		}
	}
	if hasRuleFor(role.Rules, "coordination.k8s.io") {
		t.Errorf("default Role grants Leases: %+v", role.Rules)
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		fullname string
		wantArgs []string
		wantCRDs bool
	}{
		{
			name:     "defaults",
			args:     []string{"--set", "audit.enabled=true"},
			fullname: "signgate",
			wantArgs: []string{"--audit-interval", "1h", "--audit-lease-name", "signgate-audit", "--audit-lease-duration", "15s", "--audit-registry-qps", "5", "--audit-registry-burst", "10"},
			wantCRDs: true,
		},
		{
			// One Lease per release: two releases in one namespace elect
			// separately.
			name:     "values",
			args:     []string{"--set", "audit.enabled=true", "--set", "audit.interval=30m", "--set", "audit.leaseDuration=1m", "--set", "fullnameOverride=gate-b", "--set-json", "audit.registryQPS=0.5", "--set", "audit.registryBurst=2"},
			fullname: "gate-b",
			wantArgs: []string{"--audit-interval", "30m", "--audit-lease-name", "gate-b-audit", "--audit-lease-duration", "1m", "--audit-registry-qps", "0.5", "--audit-registry-burst", "2"},
			wantCRDs: true,
		},
		{
			// The CRDs are someone else's: everything else stays.
			name:     "noCRDs",
			args:     []string{"--set", "audit.enabled=true", "--set", "audit.policyReports.installCRDs=false"},
			fullname: "signgate",
			wantArgs: []string{"--audit-interval", "1h", "--audit-lease-name", "signgate-audit", "--audit-lease-duration", "15s", "--audit-registry-qps", "5", "--audit-registry-burst", "10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, tt.args...)
			d := one[appsv1.Deployment](t, objs, "Deployment")
			c := d.Spec.Template.Spec.Containers[0]
			if diff := cmp.Diff(tt.wantArgs, auditArgs(c.Args)); diff != "" {
				t.Errorf("audit args (-want +got):\n%s", diff)
			}
			checkPodName(t, c)

			var crds []string
			for _, o := range kinds(objs, "CustomResourceDefinition") {
				if !strings.HasSuffix(o.Metadata.Name, ".wgpolicyk8s.io") {
					continue
				}
				crds = append(crds, o.Metadata.Name)
				checkRenderedPolicyReportCRD(t, o)
			}
			slices.Sort(crds)
			var want []string
			if tt.wantCRDs {
				want = []string{"clusterpolicyreports.wgpolicyk8s.io", "policyreports.wgpolicyk8s.io"}
			}
			if diff := cmp.Diff(want, crds); diff != "" {
				t.Errorf("rendered wgpolicyk8s.io CRDs (-want +got):\n%s", diff)
			}

			gate, role := gateRoles(t, objs, tt.fullname)
			wantRules := slices.Concat([]rbacv1.PolicyRule{
				{APIGroups: []string{"signgate.dev"}, Resources: []string{"clusterimagepolicies", "imagepolicies", "trustroots"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"signgate.dev"}, Resources: []string{"clusterimagepolicies/status", "imagepolicies/status"}, Verbs: []string{"update", "patch"}},
				{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
			}, auditClusterRules)
			if diff := cmp.Diff(wantRules, gate.Rules); diff != "" {
				t.Errorf("gate ClusterRole (-want +got):\n%s", diff)
			}
			wantRole := slices.Concat([]rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"get"}},
			}, auditRoleRules(tt.fullname+"-audit"))
			if diff := cmp.Diff(wantRole, role.Rules); diff != "" {
				t.Errorf("gate Role (-want +got):\n%s", diff)
			}
			if role.Namespace != releaseNamespace {
				t.Errorf("Role namespace %q, want %q (the Lease lives in the gate's --namespace)", role.Namespace, releaseNamespace)
			}
		})
	}
}

// checkRenderedPolicyReportCRD: the template renders the file as it is,
// plus the keep annotation and the chart's labels.
func checkRenderedPolicyReportCRD(t *testing.T, o object) {
	t.Helper()
	var got map[string]any
	if err := yaml.Unmarshal(o.raw, &got); err != nil {
		t.Fatalf("decode CRD %s: %v", o.Metadata.Name, err)
	}
	meta := got["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	if ann["helm.sh/resource-policy"] != "keep" {
		t.Errorf("CRD %s: annotation helm.sh/resource-policy = %v, want keep (uninstall would delete every tool's reports)", o.Metadata.Name, ann["helm.sh/resource-policy"])
	}
	labels, _ := meta["labels"].(map[string]any)
	if labels["app.kubernetes.io/instance"] != "signgate" || labels["app.kubernetes.io/part-of"] != "signgate" {
		t.Errorf("CRD %s: labels %v, want the chart's labels", o.Metadata.Name, labels)
	}
	delete(ann, "helm.sh/resource-policy")
	delete(meta, "labels")
	for file, want := range policyReportCRDs {
		if want.name != o.Metadata.Name {
			continue
		}
		b, err := os.ReadFile(filepath.Join("files", file))
		if err != nil {
			t.Fatal(err)
		}
		var fromFile map[string]any
		if err := yaml.Unmarshal(b, &fromFile); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if diff := cmp.Diff(fromFile, got); diff != "" {
			t.Errorf("rendered CRD %s differs from files/%s beyond the keep annotation and labels (-file +rendered):\n%s", want.name, file, diff)
		}
		return
	}
	t.Errorf("rendered unexpected CRD %s", o.Metadata.Name)
}

// crd is the part of apiextensions.k8s.io/v1 CustomResourceDefinition the
// files use; decoded strictly, so a misspelt or unknown field fails.
// (k8s.io/apiextensions-apiserver is not a dependency of the module.)
type crd struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind       string   `json:"kind"`
			ListKind   string   `json:"listKind"`
			Plural     string   `json:"plural"`
			Singular   string   `json:"singular"`
			ShortNames []string `json:"shortNames"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name                     string `json:"name"`
			Served                   bool   `json:"served"`
			Storage                  bool   `json:"storage"`
			AdditionalPrinterColumns []struct {
				Name     string `json:"name"`
				Type     string `json:"type"`
				JSONPath string `json:"jsonPath"`
				Priority int32  `json:"priority"`
			} `json:"additionalPrinterColumns"`
			Schema struct {
				OpenAPIV3Schema *jsonSchema `json:"openAPIV3Schema"`
			} `json:"schema"`
			Subresources map[string]any `json:"subresources"`
		} `json:"versions"`
	} `json:"spec"`
}

// jsonSchema is the subset of JSONSchemaProps the files use.
type jsonSchema struct {
	Type                 string                 `json:"type"`
	Format               string                 `json:"format"`
	Description          string                 `json:"description"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties *jsonSchema            `json:"additionalProperties"`
	Items                *jsonSchema            `json:"items"`
	Required             []string               `json:"required"`
	Enum                 []string               `json:"enum"`
	PreserveUnknown      bool                   `json:"x-kubernetes-preserve-unknown-fields"`
	IntOrString          bool                   `json:"x-kubernetes-int-or-string"`
	MapType              string                 `json:"x-kubernetes-map-type"`
	ListType             string                 `json:"x-kubernetes-list-type"`
}

// checkStructural checks the rules of a structural schema the files could
// break: every node has a type (unless it preserves unknown fields or is
// int-or-string), objects say what they hold, arrays have items, required
// fields exist, and metadata at the root is only {type: object}.
func checkStructural(t *testing.T, path string, s *jsonSchema) {
	t.Helper()
	if s == nil {
		t.Errorf("%s: no schema", path)
		return
	}
	if s.Type == "" && !s.PreserveUnknown && !s.IntOrString {
		t.Errorf("%s: no type (a structural schema needs one)", path)
	}
	switch s.Type {
	case "object":
		if s.Properties == nil && s.AdditionalProperties == nil && !s.PreserveUnknown && path != ".metadata" {
			t.Errorf("%s: object without properties or additionalProperties (pruned to nothing)", path)
		}
		if s.Properties != nil && s.AdditionalProperties != nil {
			t.Errorf("%s: both properties and additionalProperties", path)
		}
	case "array":
		if s.Items == nil {
			t.Errorf("%s: array without items", path)
		}
	case "string", "integer", "boolean", "number", "":
	default:
		t.Errorf("%s: unknown type %q", path, s.Type)
	}
	for _, r := range s.Required {
		if _, ok := s.Properties[r]; !ok {
			t.Errorf("%s: required %q is not a property", path, r)
		}
	}
	for name, p := range s.Properties {
		checkStructural(t, path+"."+name, p)
	}
	if s.AdditionalProperties != nil {
		checkStructural(t, path+"[*]", s.AdditionalProperties)
	}
	if s.Items != nil {
		checkStructural(t, path+"[]", s.Items)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The files are plain YAML (applied as is by the e2e harness) holding the
// Policy WG's v1alpha2 schema: the report fields at the top level (not
// under spec), structural.
func TestPolicyReportCRDFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("files", "wgpolicyk8s.io_*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if diff := cmp.Diff(keys(policyReportCRDs), names); diff != "" {
		t.Errorf("files/wgpolicyk8s.io_*.yaml (-want +got):\n%s", diff)
	}
	for file, want := range policyReportCRDs {
		t.Run(want.kind, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("files", file))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "{{") {
				t.Errorf("%s holds a template action: it is applied as plain YAML", file)
			}
			if strings.Count(string(b), "\n---") > 0 || strings.HasPrefix(string(b), "---") {
				t.Errorf("%s: want one document", file)
			}
			var c crd
			if err := yaml.UnmarshalStrict(b, &c); err != nil {
				t.Fatalf("%s: not a CustomResourceDefinition (or a field this test does not know): %v", file, err)
			}
			if c.APIVersion != "apiextensions.k8s.io/v1" || c.Kind != "CustomResourceDefinition" || c.Metadata.Name != want.name {
				t.Errorf("%s: %s %s %s, want apiextensions.k8s.io/v1 CustomResourceDefinition %s", file, c.APIVersion, c.Kind, c.Metadata.Name, want.name)
			}
			// The name must be <plural>.<group> for the API server to accept it.
			n := c.Spec.Names
			if c.Spec.Group != "wgpolicyk8s.io" || c.Metadata.Name != n.Plural+"."+c.Spec.Group {
				t.Errorf("%s: group %q, plural %q: want group wgpolicyk8s.io and name <plural>.<group>", file, c.Spec.Group, n.Plural)
			}
			if n.Kind != want.kind || n.ListKind != want.kind+"List" || n.Plural != want.plural || n.Singular != want.singular || !slices.Equal(n.ShortNames, []string{want.shortName}) {
				t.Errorf("%s: names %+v, want kind %s, plural %s, singular %s, shortName %s", file, n, want.kind, want.plural, want.singular, want.shortName)
			}
			if c.Spec.Scope != want.scope {
				t.Errorf("%s: scope %q, want %q", file, c.Spec.Scope, want.scope)
			}
			if len(c.Spec.Versions) != 1 {
				t.Fatalf("%s: %d versions, want v1alpha2 only", file, len(c.Spec.Versions))
			}
			v := c.Spec.Versions[0]
			if v.Name != "v1alpha2" || !v.Served || !v.Storage {
				t.Errorf("%s: version %s served=%v storage=%v, want v1alpha2 served and stored", file, v.Name, v.Served, v.Storage)
			}
			var columns []string
			for _, col := range v.AdditionalPrinterColumns {
				if col.Priority == 0 {
					columns = append(columns, col.Name+"="+col.JSONPath)
				}
			}
			if diff := cmp.Diff([]string{"Pass=.summary.pass", "Fail=.summary.fail", "Warn=.summary.warn", "Error=.summary.error", "Skip=.summary.skip", "Age=.metadata.creationTimestamp"}, columns); diff != "" {
				t.Errorf("%s: printer columns (-want +got):\n%s", file, diff)
			}

			root := v.Schema.OpenAPIV3Schema
			checkStructural(t, "", root)
			if root == nil || root.Type != "object" {
				t.Fatalf("%s: root schema %+v, want type object", file, root)
			}
			if m := root.Properties["metadata"]; m == nil || m.Type != "object" || m.Properties != nil || m.AdditionalProperties != nil {
				t.Errorf("%s: metadata schema %+v, want only {type: object}", file, m)
			}
			if diff := cmp.Diff([]string{"apiVersion", "kind", "metadata", "results", "scope", "scopeSelector", "summary"}, keys(root.Properties)); diff != "" {
				t.Errorf("%s: top-level properties (-want +got):\n%s", file, diff)
			}
			sum := root.Properties["summary"]
			for _, k := range []string{"pass", "fail", "warn", "error", "skip"} {
				if p := sum.Properties[k]; p == nil || p.Type != "integer" {
					t.Errorf("%s: summary.%s = %+v, want integer", file, k, p)
				}
			}
			objectRef := []string{"apiVersion", "fieldPath", "kind", "name", "namespace", "resourceVersion", "uid"}
			if diff := cmp.Diff(objectRef, keys(root.Properties["scope"].Properties)); diff != "" {
				t.Errorf("%s: scope, an ObjectReference (-want +got):\n%s", file, diff)
			}
			selector := []string{"matchExpressions", "matchLabels"}
			if diff := cmp.Diff(selector, keys(root.Properties["scopeSelector"].Properties)); diff != "" {
				t.Errorf("%s: scopeSelector, a LabelSelector (-want +got):\n%s", file, diff)
			}
			results := root.Properties["results"]
			if results.Type != "array" || results.Items == nil {
				t.Fatalf("%s: results %+v, want an array", file, results)
			}
			r := results.Items
			if diff := cmp.Diff([]string{"category", "message", "policy", "properties", "resourceSelector", "resources", "result", "rule", "scored", "severity", "source", "timestamp"}, keys(r.Properties)); diff != "" {
				t.Errorf("%s: result properties (-want +got):\n%s", file, diff)
			}
			if !slices.Equal(r.Required, []string{"policy"}) {
				t.Errorf("%s: result required %v, want [policy]", file, r.Required)
			}
			if diff := cmp.Diff([]string{"pass", "fail", "warn", "error", "skip"}, r.Properties["result"].Enum); diff != "" {
				t.Errorf("%s: result enum (-want +got):\n%s", file, diff)
			}
			if diff := cmp.Diff([]string{"critical", "high", "low", "medium", "info"}, r.Properties["severity"].Enum); diff != "" {
				t.Errorf("%s: severity enum (-want +got):\n%s", file, diff)
			}
			if r.Properties["scored"].Type != "boolean" {
				t.Errorf("%s: scored is %q, want boolean", file, r.Properties["scored"].Type)
			}
			ts := r.Properties["timestamp"]
			if s, n := ts.Properties["seconds"], ts.Properties["nanos"]; s == nil || n == nil || s.Type != "integer" || s.Format != "int64" || n.Type != "integer" || n.Format != "int32" {
				t.Errorf("%s: timestamp %+v, want seconds int64 and nanos int32", file, ts.Properties)
			}
			if p := r.Properties["properties"]; p.Type != "object" || p.AdditionalProperties == nil || p.AdditionalProperties.Type != "string" {
				t.Errorf("%s: properties %+v, want map[string]string", file, p)
			}
			res := r.Properties["resources"]
			if res.Type != "array" || res.Items == nil {
				t.Fatalf("%s: resources %+v, want an array of ObjectReferences", file, res)
			}
			if diff := cmp.Diff(objectRef, keys(res.Items.Properties)); diff != "" {
				t.Errorf("%s: resources[], ObjectReferences (-want +got):\n%s", file, diff)
			}
			if diff := cmp.Diff(selector, keys(r.Properties["resourceSelector"].Properties)); diff != "" {
				t.Errorf("%s: resourceSelector, a LabelSelector (-want +got):\n%s", file, diff)
			}
		})
	}
}
