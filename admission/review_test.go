package admission

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signgate/signgate/internal/registrytest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden is the readable form of a response kept in testdata/golden: the
// patch decoded, the message split into its lines, registry and digests
// replaced by stable names.
type golden struct {
	UID              string            `json:"uid"`
	Allowed          bool              `json:"allowed"`
	Code             int32             `json:"code,omitempty"`
	Message          []string          `json:"message,omitempty"`
	Warnings         []string          `json:"warnings,omitempty"`
	AuditAnnotations map[string]string `json:"auditAnnotations,omitempty"`
	PatchType        string            `json:"patchType,omitempty"`
	Patch            []patchOp         `json:"patch,omitempty"`
}

func toGolden(t testing.TB, r *admissionv1.AdmissionResponse) golden {
	t.Helper()
	g := golden{UID: string(r.UID), Allowed: r.Allowed, Warnings: r.Warnings, AuditAnnotations: r.AuditAnnotations}
	if r.Result != nil {
		g.Code = r.Result.Code
		if r.Result.Message != "" {
			g.Message = strings.Split(r.Result.Message, "\n")
		}
	}
	if r.PatchType != nil {
		g.PatchType = string(*r.PatchType)
	}
	if len(r.Patch) > 0 {
		if err := json.Unmarshal(r.Patch, &g.Patch); err != nil {
			t.Fatalf("patch is not a JSON patch: %v: %s", err, r.Patch)
		}
	}
	return g
}

// checkGolden compares got with testdata/golden/<name>.json, or rewrites
// it with -update.
func checkGolden(t *testing.T, e *env, name string, r *admissionv1.AdmissionResponse) {
	t.Helper()
	js, err := json.MarshalIndent(toGolden(t, r), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := e.normalize(string(js)) + "\n"
	file := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("response differs from %s (-want +got):\n%s", file, diff)
	}
}

// reviewCases are the reviews of TestReviews (and TestFindingsAreTheLines),
// each with the configuration of its gate.
var reviewCases = []struct {
	name   string
	config string
}{
	// validate: signatures
	{"validate-pod-signed", configDefault},
	{"validate-pod-bundle-signed", configDefault},
	{"validate-pod-unsigned", configDefault},
	{"validate-pod-wrong-key", configDefault},
	{"validate-pod-unpinned", configDefault},
	{"validate-pod-tag-and-digest", configDefault},
	{"validate-pod-unmatched", configDefault},
	{"validate-pod-invalid-policy", configDefault},
	{"validate-pod-static-pass", configDefault},
	{"validate-pod-invalid-reference", configDefault},
	{"validate-pod-every-container-kind", configDefault},
	{"validate-pod-forged-annotations", configDefault},
	{"validate-pod-dry-run", configDefault},
	{"validate-pod-deletion-timestamp", configDefault},
	{"validate-pod-unknown-subresource", configDefault},
	{"validate-pod-ephemeral-update", configDefault},
	{"validate-pod-image-update", configDefault},
	{"validate-pod-exempt-namespace", configDefault},
	{"validate-pod-gate-namespace", configDefault},
	{"validate-pod-null-object", configDefault},
	{"validate-pod-delete", configDefault},
	{"validate-pod-operation-lowercase", configDefault},
	{"validate-pod-operation-missing", configDefault},
	{"validate-pod-operation-unknown", configDefault},
	// validate: modes, Pod Security, hardening
	{"validate-pod-warn-mode", configDefault},
	{"validate-pod-audit-mode", configDefault},
	{"validate-pod-privileged", configDefault},
	{"validate-pod-hardening", configDefault},
	// validate: workloads
	{"validate-deployment-signed-tag", configDefault},
	{"validate-deployment-unsigned", configDefault},
	{"validate-replicaset-privileged", configDefault},
	{"validate-statefulset-unsigned", configDefault},
	{"validate-daemonset-unsigned", configDefault},
	{"validate-job-unsigned", configDefault},
	{"validate-cronjob-unsigned", configDefault},
	{"validate-replicationcontroller-unsigned", configDefault},
	{"validate-podtemplate-unsigned", configDefault},
	{"validate-deployment-privileged-workloads-warn", configWorkloadsWarn},
	{"validate-deployment-replicas-update", configDefault},
	// mutate
	{"mutate-pod-tags", configDefault},
	{"mutate-pod-pinned", configDefault},
	{"mutate-pod-unknown-tag", configDefault},
	{"mutate-pod-ephemeral-update", configDefault},
	{"mutate-deployment-default", configDefault},
	{"mutate-deployment-pin-templates", configPinTemplates},
	{"mutate-cronjob-pin-templates", configPinTemplates},
	{"mutate-pod-delete", configDefault},
	{"mutate-pod-operation-lowercase", configDefault},
}

// TestReviews runs every review in testdata/reviews through the real
// handler and compares the response with its golden file. Reviews named
// mutate-* go to /mutate, the others to /validate.
func TestReviews(t *testing.T) {
	cases := reviewCases
	envs := map[string]*env{} // shared by the parallel cases, live until all finish
	for _, config := range []string{configDefault, configPinTemplates, configWorkloadsWarn} {
		envs[config] = newEnv(t, config)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := envs[tc.config]
			body := e.review(t, tc.name)
			w := WebhookValidate
			if strings.HasPrefix(tc.name, "mutate-") {
				w = WebhookMutate
			}
			resp := e.post(t, w, body, "?timeout=10s")
			var in admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &in); err != nil {
				t.Fatal(err)
			}
			if resp.UID != in.Request.UID {
				t.Errorf("uid = %q, want %q", resp.UID, in.Request.UID)
			}
			if w == WebhookValidate && (resp.Patch != nil || resp.PatchType != nil) {
				t.Errorf("validating response carries a patch")
			}
			checkGolden(t, e, tc.name, resp)
		})
	}
}

// TestReviewsRegistryFaults are the cases that need the registry to
// misbehave or count its requests: each gets its own registry.
func TestReviewsRegistryFaults(t *testing.T) {
	cases := []struct {
		name         string
		fault        registrytest.Fault
		wantRequests int64 // -1: not checked
	}{
		{"validate-pod-label-only-update", registrytest.FailN(503, -1), 0},
		{"validate-deployment-scale-update", registrytest.FailN(503, -1), 0},
		{"validate-pod-registry-down", registrytest.FailN(503, -1), -1},
		{"validate-pod-unpinned-registry-down", registrytest.FailN(503, -1), -1},
		{"mutate-pod-registry-down", registrytest.FailN(503, -1), -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, configDefault)
			e.reg.SetFault(tc.fault)
			w := WebhookValidate
			if strings.HasPrefix(tc.name, "mutate-") {
				w = WebhookMutate
			}
			resp := e.post(t, w, e.review(t, tc.name), "?timeout=10s")
			if tc.wantRequests >= 0 && e.reg.Requests() != tc.wantRequests {
				t.Errorf("registry requests = %d, want %d: %v", e.reg.Requests(), tc.wantRequests, e.reg.RequestLog())
			}
			checkGolden(t, e, tc.name, resp)
		})
	}
}
