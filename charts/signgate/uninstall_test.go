package chart_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// uninstallHook is what templates/uninstall-hook.yaml renders.
type uninstallHook struct {
	sa      corev1.ServiceAccount
	role    rbacv1.ClusterRole
	binding rbacv1.ClusterRoleBinding
	job     batchv1.Job
}

// hookObjects returns the rendered pre-delete hook objects: the ones
// annotated helm.sh/hook.
func hookObjects(t *testing.T, objs []object) (h uninstallHook, n int) {
	t.Helper()
	isHook := func(m metav1.ObjectMeta) bool {
		if _, ok := m.Annotations["helm.sh/hook"]; ok {
			n++
			return true
		}
		return false
	}
	for _, o := range objs {
		switch o.Kind {
		case "ServiceAccount":
			if v := decode[corev1.ServiceAccount](t, o); isHook(v.ObjectMeta) {
				h.sa = v
			}
		case "ClusterRole":
			if v := decode[rbacv1.ClusterRole](t, o); isHook(v.ObjectMeta) {
				h.role = v
			}
		case "ClusterRoleBinding":
			if v := decode[rbacv1.ClusterRoleBinding](t, o); isHook(v.ObjectMeta) {
				h.binding = v
			}
		case "Job":
			if v := decode[batchv1.Job](t, o); isHook(v.ObjectMeta) {
				h.job = v
			}
		default:
			var m struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal(o.raw, &m); err != nil {
				t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
			}
			// The helm test Pods are the other hooks (templates/tests/).
			if hook := m.Metadata.Annotations["helm.sh/hook"]; hook != "" && hook != "test" {
				t.Errorf("%s %s: unexpected hook %q", o.Kind, o.Metadata.Name, m.Metadata.Annotations["helm.sh/hook"])
			}
		}
	}
	return h, n
}

// The pre-delete hook removes exactly the webhook configurations the chart
// renders, with the gate's image, under Pod Security restricted, as a
// ServiceAccount that may get and delete those two objects and nothing
// else; the ServiceAccount and RBAC exist before the Job runs.
func TestUninstallHook(t *testing.T) {
	t.Parallel()
	extra := []struct {
		name string
		args []string
	}{
		{name: "fullnameOverride", args: []string{"--set", "fullnameOverride=gate"}},
		{name: "digest", args: []string{"--set", "image.digest=sha256:" + string(make64('a')), "--set", "image.pullPolicy=Always"}},
		// A mirror: the hook must pull from it too, or an air-gapped
		// cluster's `helm uninstall` fails on the hook.
		{name: "registry mirror", args: []string{"--set", "image.registry=mirror.example:5000", "--set", "image.digest=sha256:" + string(make64('b'))}},
		{name: "placement", args: []string{
			"--set", "imagePullSecrets[0].name=regcred",
			"--set", "nodeSelector.kubernetes\\.io/os=linux",
			"--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists", "--set", "tolerations[0].effect=NoSchedule",
		}},
	}
	all := append(extra, scenarios...)
	for _, sc := range all {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, sc.args...)
			mutating, validating, _ := webhooks(t, objs)
			dep := one[appsv1.Deployment](t, objs, "Deployment")
			h, n := hookObjects(t, objs)
			if n != 4 {
				t.Fatalf("rendered %d hook objects, want 4 (ServiceAccount, ClusterRole, ClusterRoleBinding, Job)", n)
			}

			weights := map[string]int{}
			for kind, m := range map[string]metav1.ObjectMeta{"ServiceAccount": h.sa.ObjectMeta, "ClusterRole": h.role.ObjectMeta, "ClusterRoleBinding": h.binding.ObjectMeta, "Job": h.job.ObjectMeta} {
				a := m.Annotations
				if a["helm.sh/hook"] != "pre-delete" || a["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
					t.Errorf("%s %s annotations %v, want hook pre-delete, delete policy before-hook-creation,hook-succeeded", kind, m.Name, a)
				}
				w, err := strconv.Atoi(a["helm.sh/hook-weight"])
				if err != nil {
					t.Errorf("%s %s: hook-weight %q: %v", kind, m.Name, a["helm.sh/hook-weight"], err)
				}
				weights[kind] = w
			}
			for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
				if weights[kind] >= weights["Job"] {
					t.Errorf("hook-weight of %s %d, want below the Job's %d (created first)", kind, weights[kind], weights["Job"])
				}
			}

			job := h.job
			if job.Namespace != releaseNamespace || h.sa.Namespace != releaseNamespace {
				t.Errorf("Job in %q, ServiceAccount in %q, want both in %q", job.Namespace, h.sa.Namespace, releaseNamespace)
			}
			if job.Spec.ActiveDeadlineSeconds == nil || *job.Spec.ActiveDeadlineSeconds <= 0 || *job.Spec.ActiveDeadlineSeconds > 300 {
				t.Errorf("activeDeadlineSeconds = %v, want set and within helm's default hook timeout (300)", job.Spec.ActiveDeadlineSeconds)
			}
			if job.Spec.BackoffLimit == nil {
				t.Error("backoffLimit not set")
			}
			pod := job.Spec.Template.Spec
			if pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %q, want Never", pod.RestartPolicy)
			}
			checkRestricted(t, job.Spec.Template)
			if len(pod.Containers) != 1 {
				t.FailNow()
			}
			c, gate := pod.Containers[0], dep.Spec.Template.Spec.Containers[0]
			if sc.name == "registry mirror" && !strings.HasPrefix(c.Image, "mirror.example:5000/") {
				t.Errorf("hook image %q, want it pulled from image.registry mirror.example:5000", c.Image)
			}
			if c.Image != gate.Image || c.ImagePullPolicy != gate.ImagePullPolicy {
				t.Errorf("hook image %q (%s), want the gate's %q (%s)", c.Image, c.ImagePullPolicy, gate.Image, gate.ImagePullPolicy)
			}
			gateSpec := dep.Spec.Template.Spec
			if diff := cmp.Diff(gateSpec.ImagePullSecrets, pod.ImagePullSecrets); diff != "" {
				t.Errorf("imagePullSecrets (-gate +hook):\n%s", diff)
			}
			if diff := cmp.Diff(gateSpec.NodeSelector, pod.NodeSelector); diff != "" {
				t.Errorf("nodeSelector (-gate +hook):\n%s", diff)
			}
			if diff := cmp.Diff(gateSpec.Tolerations, pod.Tolerations); diff != "" {
				t.Errorf("tolerations (-gate +hook):\n%s", diff)
			}
			wantArgs := []string{"uninstall-webhooks", "--mutating", mutating.Name, "--validating", validating.Name, "--timeout", "30s"}
			if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
				t.Errorf("hook args (-want +got):\n%s", diff)
			}
			if len(c.Command) > 0 {
				t.Errorf("command %v, want the image's entrypoint (signgate)", c.Command)
			}
			// The gate's Service, PDB and NetworkPolicy select by these.
			if sel := labels.SelectorFromSet(dep.Spec.Selector.MatchLabels); sel.Matches(labels.Set(job.Spec.Template.Labels)) {
				t.Errorf("hook pod labels %v match the gate's selector %v", job.Spec.Template.Labels, sel)
			}

			// RBAC: the Job's ServiceAccount, bound to a ClusterRole that
			// gets and deletes the two configurations by name.
			if pod.ServiceAccountName != h.sa.Name {
				t.Errorf("Job serviceAccountName %q, want the hook's ServiceAccount %q", pod.ServiceAccountName, h.sa.Name)
			}
			wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: h.sa.Name, Namespace: releaseNamespace}}
			if diff := cmp.Diff(wantSubjects, h.binding.Subjects); diff != "" {
				t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
			}
			if r := h.binding.RoleRef; r.Kind != "ClusterRole" || r.Name != h.role.Name || r.APIGroup != "rbac.authorization.k8s.io" {
				t.Errorf("ClusterRoleBinding roleRef %+v, want ClusterRole %s", r, h.role.Name)
			}
			wantRules := []rbacv1.PolicyRule{
				{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{mutating.Name}, Verbs: []string{"get", "delete"}},
				{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, ResourceNames: []string{validating.Name}, Verbs: []string{"get", "delete"}},
			}
			if diff := cmp.Diff(wantRules, h.role.Rules); diff != "" {
				t.Errorf("hook ClusterRole rules (-want +got):\n%s", diff)
			}
			checkNoWildcards(t, "ClusterRole "+h.role.Name, h.role.Rules)
			// Names of their own: the hook never replaces the gate's
			// ServiceAccount or RBAC.
			for kind, name := range map[string]string{"ServiceAccount": h.sa.Name, "ClusterRole": h.role.Name, "ClusterRoleBinding": h.binding.Name, "Job": job.Name} {
				same := 0
				for _, o := range kinds(objs, kind) {
					if o.Metadata.Name == name {
						same++
					}
				}
				if same != 1 {
					t.Errorf("%d %s objects named %q, want only the hook's", same, kind, name)
				}
			}
		})
	}
}

// Without rbac.create the chart makes no ClusterRoles, so no hook either.
func TestUninstallHookNeedsRBAC(t *testing.T) {
	t.Parallel()
	objs := render(t, "--set", "rbac.create=false")
	if _, n := hookObjects(t, objs); n != 0 {
		t.Errorf("rbac.create=false: %d hook objects rendered, want none", n)
	}
}

// uninstallHook.enabled=false renders no hook (where hook Jobs cannot run).
func TestUninstallHookDisabled(t *testing.T) {
	t.Parallel()
	objs := render(t, "--set", "uninstallHook.enabled=false")
	if _, n := hookObjects(t, objs); n != 0 {
		t.Errorf("uninstallHook.enabled=false: %d hook objects rendered, want none", n)
	}
	if len(kinds(objs, "Deployment")) != 1 {
		t.Error("uninstallHook.enabled=false: the gate's Deployment is not rendered")
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}
