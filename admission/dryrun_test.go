package admission

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
)

func TestKindOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		apiVersion, kind string
		wantOK           bool
		wantGroup        string
		wantResource     string
	}{
		{"v1", "Pod", true, "", "pods"},
		{"apps/v1", "Deployment", true, "apps", "deployments"},
		{"apps/v1beta2", "StatefulSet", true, "apps", "statefulsets"}, // any version, sent as v1
		{"batch/v1", "CronJob", true, "batch", "cronjobs"},
		{"v1", "PodTemplate", true, "", "podtemplates"},
		{"v1", "ConfigMap", false, "", ""},
		{"example.com/v1", "Pod", false, "", ""}, // a Pod of another group is not a Pod
		{"a/b/c", "Pod", false, "", ""},          // not an apiVersion
	}
	for _, tt := range tests {
		k, ok := KindOf(tt.apiVersion, tt.kind)
		if ok != tt.wantOK {
			t.Errorf("KindOf(%q, %q) ok = %v, want %v", tt.apiVersion, tt.kind, ok, tt.wantOK)
			continue
		}
		if !ok {
			continue
		}
		gvk, gvr := k.GroupVersionKind, k.GroupVersionResource
		if gvk.Group != tt.wantGroup || gvk.Version != "v1" || gvk.Kind != tt.kind || gvr.Group != tt.wantGroup || gvr.Version != "v1" || gvr.Resource != tt.wantResource {
			t.Errorf("KindOf(%q, %q) = %+v", tt.apiVersion, tt.kind, k)
		}
	}
	// Every kind the gate decodes has a resource to be named by.
	for gk, k := range kinds {
		if k.resource == "" || k.resource != strings.ToLower(gk.kind)+"s" {
			t.Errorf("kind %s: resource %q", gk, k.resource)
		}
	}
}

// restrictedPod is a Pod in namespace ns that passes Pod Security
// restricted, with one container of the given image.
func restrictedPod(ns, image string) []byte {
	return []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"` + ns + `"},"spec":{
		"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
		"containers":[{"name":"app","image":"` + image + `","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`)
}

// restrictedDeployment is the same pod as a Deployment's template.
func restrictedDeployment(ns, image string) []byte {
	var pod map[string]any
	if err := json.Unmarshal(restrictedPod(ns, image), &pod); err != nil {
		panic(err)
	}
	obj, _ := json.Marshal(map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d", "namespace": ns},
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"labels": map[string]string{"app": "d"}}, "spec": pod["spec"]}},
	})
	return obj
}

func dryRunRequest(t *testing.T, kind, ns string, obj []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	apiVersion := "v1"
	if kind == "Deployment" {
		apiVersion = "apps/v1"
	}
	k, ok := KindOf(apiVersion, kind)
	if !ok {
		t.Fatalf("KindOf(%s, %s): not reviewed", apiVersion, kind)
	}
	return DryRunCreate(k, ns, "p", obj, "dry-run", "test")
}

// TestDryRun: an object through both webhooks — pinned by the mutating
// webhook, judged on the pinned object by the validating one — with its
// images before and after and what their findings make of the object.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, configDefault)
	reg := e.vars["Reg"]
	tests := []struct {
		name, kind, ns, image string
		wantAllowed           bool
		wantPinned            string
		wantSeverity          Severity
	}{
		{"signed tag pinned and admitted", "Pod", "team-a", reg + "/team-a/app:v1", true, reg + "/team-a/app:v1@" + e.vars["Signed"], ""},
		{"unsigned tag pinned and denied", "Pod", "team-a", reg + "/team-a/unsigned:v1", false, reg + "/team-a/unsigned:v1@" + e.vars["Unsigned"], SeverityDeny},
		{"digest kept", "Pod", "team-a", reg + "/team-a/app@" + e.vars["Signed"], true, reg + "/team-a/app@" + e.vars["Signed"], ""},
		{"template not pinned, verified by tag", "Deployment", "team-a", reg + "/team-a/app:v1", true, "", ""},
		{"unknown tag", "Pod", "team-a", reg + "/team-a/app:nope", false, "", SeverityDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := restrictedPod(tt.ns, tt.image)
			if tt.kind == "Deployment" {
				obj = restrictedDeployment(tt.ns, tt.image)
			}
			run, err := e.gate.DryRun(t.Context(), dryRunRequest(t, tt.kind, tt.ns, obj), hangGuard)
			if err != nil {
				t.Fatal(err)
			}
			if run.Validate == nil || run.Validate.Allowed != tt.wantAllowed {
				t.Fatalf("validate = %+v, want allowed %v", run.Validate, tt.wantAllowed)
			}
			prefix := "spec."
			if tt.kind == "Deployment" {
				prefix = "spec.template.spec."
			}
			want := []DryRunImage{{Field: prefix + "containers[0].image", Image: tt.image, Pinned: tt.wantPinned, Severity: tt.wantSeverity}}
			if diff := cmp.Diff(want, run.Images); diff != "" {
				t.Errorf("images (-want +got):\n%s", diff)
			}
			checkFindingLines(t, run.Validate, keepFindings(run.Findings, func(f Finding) bool { return f.Code != CodePinFailed }))
		})
	}
}

// keepFindings keeps the findings keep selects (the mutating webhook's
// warnings are not in the validating answer).
func keepFindings(list []Finding, keep func(Finding) bool) []Finding {
	var out []Finding
	for _, f := range list {
		if keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// TestOfflineGate: an offline gate contacts no registry (it has no
// verifier to call), decides everything that needs none exactly as
// online, and reports what would need one as warnings — the same for a
// bare Pod and for a Deployment.
func TestOfflineGate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, configDefault)
	if _, err := NewGate(Options{Policies: e.gate.policies}); err == nil || !strings.Contains(err.Error(), "Verifier is required unless Options.Offline") {
		t.Errorf("NewGate without verifier: %v", err)
	}
	if _, err := NewGate(Options{Offline: true, Verifier: e.verifier, Policies: e.gate.policies}); err == nil {
		t.Error("NewGate: an offline gate with a verifier was accepted")
	}
	g, err := NewGate(Options{Offline: true, Policies: e.gate.policies, Config: e.gate.config, Namespace: "signgate-system"})
	if err != nil {
		t.Fatal(err)
	}
	reg := e.vars["Reg"]
	tests := []struct {
		name, ns, image string
		wantAllowed     bool
		wantCodes       []Code // of the validating answer, sorted as given
	}{
		{"covered tag: nothing checked, nothing denied", "team-a", reg + "/team-a/unsigned:v1", true, []Code{CodeOfflineNotVerified}},
		{"covered digest", "team-a", reg + "/team-a/app@" + e.vars["Signed"], true, []Code{CodeOfflineNotVerified}},
		{"unmatched tag is denied", "team-a", reg + "/other/app:v1", false, []Code{CodeImageUnmatched}},
		{"static pass", "team-a", reg + "/public/base:v1", true, nil},
		{"invalid policy denies", "team-broken", reg + "/team-a/app:v1", false, []Code{CodePolicyInvalid}},
	}
	for _, tt := range tests {
		for _, kind := range []string{"Pod", "Deployment"} {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				obj, prefix := restrictedPod(tt.ns, tt.image), "spec."
				if kind == "Deployment" {
					obj, prefix = restrictedDeployment(tt.ns, tt.image), "spec.template.spec."
				}
				run, err := g.DryRun(t.Context(), dryRunRequest(t, kind, tt.ns, obj), hangGuard)
				if err != nil {
					t.Fatal(err)
				}
				if len(run.Mutate.Patch) != 0 {
					t.Errorf("offline mutate patched: %s", run.Mutate.Patch)
				}
				if run.Validate.Allowed != tt.wantAllowed {
					t.Errorf("allowed = %v, want %v: %+v", run.Validate.Allowed, tt.wantAllowed, run.Validate.Result)
				}
				var codes []Code
				for _, f := range run.Findings {
					switch {
					case f.Code == CodeOfflineNotPinned:
						if kind != "Pod" || f.Severity != SeverityWarn || f.Message != prefix+"containers[0].image "+`"`+tt.image+`": not pinned by digest (offline: not resolved)` {
							t.Errorf("not-pinned finding %+v", f)
						}
					case f.Code == CodeOfflineNotVerified && f.Severity != SeverityWarn:
						t.Errorf("not-verified finding is not a warning: %+v", f)
					default:
						if !strings.HasPrefix(f.Field, prefix) {
							t.Errorf("finding field %q, want under %s", f.Field, prefix)
						}
						codes = append(codes, f.Code)
					}
				}
				if diff := cmp.Diff(tt.wantCodes, codes); diff != "" {
					t.Errorf("codes (-want +got):\n%s", diff)
				}
			})
		}
	}
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("the offline gate made %d registry requests", n)
	}
}
