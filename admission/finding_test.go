package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/signgate/signgate/internal/imageref"
	"github.com/signgate/signgate/internal/registrytest"
	"github.com/signgate/signgate/policy"
	"github.com/signgate/signgate/verifier"
)

// findingsOf runs the review testdata/reviews/<name>.yaml through
// ValidateFindings or MutateFindings (mutate-*), checks that the response
// is the one Validate or Mutate gives and that the findings are exactly
// the lines of the response, and returns them.
func findingsOf(t *testing.T, e *env, name string) []Finding {
	t.Helper()
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(e.review(t, name), &in); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	var resp, plain *admissionv1.AdmissionResponse
	var got []Finding
	if strings.HasPrefix(name, "mutate-") {
		resp, got = e.gate.MutateFindings(ctx, in.Request)
		plain = e.gate.Mutate(ctx, in.Request)
	} else {
		resp, got = e.gate.ValidateFindings(ctx, in.Request)
		plain = e.gate.Validate(ctx, in.Request)
	}
	if diff := cmp.Diff(toGolden(t, plain), toGolden(t, resp)); diff != "" {
		t.Errorf("%s: response with findings differs (-plain +findings):\n%s", name, diff)
	}
	checkFindingLines(t, resp, got)
	return got
}

// checkFindingLines: the findings are sorted, unique, use known codes,
// and are, line for line, the response's message, warnings and audit
// annotations.
func checkFindingLines(t *testing.T, resp *admissionv1.AdmissionResponse, got []Finding) {
	t.Helper()
	var message, warnings []string
	audit := map[string][]string{}
	for i, f := range got {
		if !slices.Contains(Codes, f.Code) {
			t.Errorf("finding %d: unknown code %q", i, f.Code)
		}
		if f.Field != "" && !strings.HasPrefix(f.Message, f.Field) {
			t.Errorf("finding %d: field %q is not where the line starts: %q", i, f.Field, f.Message)
		}
		if f.Image != "" && !strings.Contains(f.Message, `"`+f.Image+`"`) {
			t.Errorf("finding %d: image %q not quoted in the line: %q", i, f.Image, f.Message)
		}
		if f.Policy != "" && !strings.Contains(f.Message, f.Policy) {
			t.Errorf("finding %d: policy %q not in the line: %q", i, f.Policy, f.Message)
		}
		if i > 0 && cmp.Equal(got[i-1], f) {
			t.Errorf("finding %d: duplicate %+v", i, f)
		}
		switch f.Severity {
		case SeverityDeny, SeverityRetry:
			message = append(message, f.Message)
		case SeverityWarn:
			warnings = append(warnings, f.Message)
		case SeverityAudit:
			audit[f.AuditKey] = append(audit[f.AuditKey], f.Message)
		default:
			t.Errorf("finding %d: unknown severity %q", i, f.Severity)
		}
	}
	var wantMessage string
	if resp.Result != nil && !resp.Allowed {
		wantMessage = resp.Result.Message
	}
	if got := joinLines(message); got != wantMessage {
		t.Errorf("deny and retry findings make the message\n%s\nwant\n%s", got, wantMessage)
	}
	if diff := cmp.Diff(resp.Warnings, sortedLines(warnings)); diff != "" {
		t.Errorf("warn findings differ from the warnings (-response +findings):\n%s", diff)
	}
	gotAudit := map[string]string{}
	for k, lines := range audit {
		gotAudit[k] = joinLines(lines)
	}
	if len(gotAudit) == 0 {
		gotAudit = nil
	}
	if diff := cmp.Diff(resp.AuditAnnotations, gotAudit); diff != "" {
		t.Errorf("audit findings differ from the audit annotations (-response +findings):\n%s", diff)
	}
}

// TestFindingsAreTheLines: for every review of TestReviews, the findings
// are the lines of the answer, one for one, and asking for them does not
// change the answer.
func TestFindingsAreTheLines(t *testing.T) {
	envs := map[string]*env{}
	for _, config := range []string{configDefault, configPinTemplates, configWorkloadsWarn} {
		envs[config] = newEnv(t, config)
	}
	for _, tc := range reviewCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := envs[tc.config]
			findingsOf(t, e, tc.name)
		})
	}
	for _, name := range []string{"validate-pod-registry-down", "validate-pod-unpinned-registry-down", "mutate-pod-registry-down"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, configDefault)
			e.reg.SetFault(registrytest.FailN(503, -1))
			findingsOf(t, e, name)
		})
	}
}

// withoutMessage drops the messages (the goldens pin them) and normalizes
// the images, for comparing the other fields.
func withoutMessage(e *env, list []Finding) []Finding {
	out := make([]Finding, len(list))
	for i, f := range list {
		f.Message = ""
		if e != nil {
			f.Image = e.normalize(f.Image)
		}
		out[i] = f
	}
	return out
}

// TestFindingValues pins the fields of the findings of the reviews that
// have a golden file, one or more per reason code.
func TestFindingValues(t *testing.T) {
	ci := []string{"ci-key"}
	tests := []struct {
		review string
		config string
		fault  bool // the registry answers 503
		want   []Finding
	}{
		{review: "validate-pod-delete", want: []Finding{{Severity: SeverityDeny, Code: CodeOperationNotReviewed}}},
		{review: "mutate-pod-delete", want: []Finding{{Severity: SeverityDeny, Code: CodeOperationNotReviewed}}},
		{review: "validate-pod-null-object", want: []Finding{{Severity: SeverityDeny, Code: CodeObjectInvalid}}},
		{review: "validate-pod-invalid-reference", want: []Finding{
			{Severity: SeverityDeny, Code: CodeImageInvalid, Field: "spec.containers[0].image", Image: "Registry.Example.com/UPPER/app:v1"},
			{Severity: SeverityDeny, Code: CodeImageInvalid, Field: "spec.containers[1].image", Image: "REGISTRY/team-a/app@sha512:abc"},
			{Severity: SeverityDeny, Code: CodeImageInvalid, Field: "spec.containers[2].image", Image: "REGISTRY/team-a/app@sha256:abc"},
			{Severity: SeverityDeny, Code: CodeImageEmpty, Field: "spec.containers[3].image"},
		}},
		{review: "validate-pod-unpinned", want: []Finding{
			{Severity: SeverityDeny, Code: CodeImageUnpinned, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app:v1"},
			{Severity: SeverityDeny, Code: CodeImageUnpinned, Field: "spec.containers[1].image", Image: "REGISTRY/team-a/app"},
		}},
		{review: "validate-pod-unpinned-registry-down", fault: true, want: []Finding{
			{Severity: SeverityRetry, Code: CodeImageUnpinned, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app:v1"},
		}},
		{review: "validate-pod-unmatched", want: []Finding{
			{Severity: SeverityDeny, Code: CodeImageUnmatched, Field: "spec.containers[0].image", Image: "REGISTRY/other/app@sha256:UNMATCHED"},
		}},
		{review: "validate-pod-invalid-policy", want: []Finding{
			{Severity: SeverityDeny, Code: CodePolicyInvalid, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app@sha256:SIGNED", Policy: "ImagePolicy team-broken/broken"},
		}},
		{review: "validate-pod-unsigned", want: []Finding{
			{Severity: SeverityDeny, Code: CodeNotVerified, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/unsigned@sha256:UNSIGNED", Policy: "ImagePolicy team-a/ci", Authorities: ci},
		}},
		{review: "validate-pod-warn-mode", want: []Finding{
			{Severity: SeverityWarn, Code: CodeNotVerified, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/unsigned@sha256:UNSIGNED", Policy: "ClusterImagePolicy ci-warn", Authorities: ci},
			{Severity: SeverityWarn, Code: CodePodSecurity},
			{Severity: SeverityAudit, Code: CodePodSecurity, AuditKey: auditPodSecurity},
		}},
		{review: "validate-pod-audit-mode", want: []Finding{
			{Severity: SeverityWarn, Code: CodePodSecurity},
			{Severity: SeverityAudit, Code: CodeNotVerified, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/unsigned@sha256:UNSIGNED", Policy: "ClusterImagePolicy ci-audit", Authorities: ci, AuditKey: auditImagePolicy},
			{Severity: SeverityAudit, Code: CodePodSecurity, AuditKey: auditPodSecurity},
		}},
		{review: "validate-pod-registry-down", fault: true, want: []Finding{
			{Severity: SeverityRetry, Code: CodeRegistryUndecided, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app@sha256:SIGNED", Policy: "ImagePolicy team-a/ci", Authorities: ci},
		}},
		{review: "validate-pod-privileged", want: []Finding{
			{Severity: SeverityDeny, Code: CodePodSecurity},
			{Severity: SeverityAudit, Code: CodePodSecurity, AuditKey: auditPodSecurity},
		}},
		{review: "validate-replicaset-privileged", want: []Finding{
			{Severity: SeverityDeny, Code: CodePodSecurity, Field: "spec.template.spec"},
			{Severity: SeverityAudit, Code: CodePodSecurity, Field: "spec.template.spec", AuditKey: auditPodSecurity},
		}},
		{review: "validate-pod-hardening", want: []Finding{
			{Severity: SeverityDeny, Code: CodeHardening, Field: "spec.containers[1].securityContext.readOnlyRootFilesystem", Check: "readOnlyRootFilesystem"},
			{Severity: SeverityWarn, Code: CodeHardening, Field: "spec.containers[1].resources.limits.cpu", Check: "resourceLimits"},
			{Severity: SeverityWarn, Code: CodeHardening, Field: "spec.containers[1].resources.limits.memory", Check: "resourceLimits"},
			{Severity: SeverityAudit, Code: CodeHardening, Field: "spec.runtimeClassName", Check: "runtimeClass", AuditKey: auditHardening},
		}},
		{review: "mutate-pod-unknown-tag", want: []Finding{
			{Severity: SeverityWarn, Code: CodePinFailed, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app:nope"},
			{Severity: SeverityWarn, Code: CodeImageInvalid, Field: "spec.containers[2].image", Image: "UPPER::bad"},
		}},
		{review: "mutate-pod-registry-down", fault: true, want: []Finding{
			{Severity: SeverityWarn, Code: CodePinFailed, Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app:v1"},
		}},
		{review: "validate-pod-signed"}, // admitted: none
	}
	shared := newEnv(t, configDefault)
	for _, tc := range tests {
		t.Run(tc.review, func(t *testing.T) {
			e := shared
			if tc.fault {
				e = newEnv(t, configDefault)
				e.reg.SetFault(registrytest.FailN(503, -1))
			}
			got := withoutMessage(e, findingsOf(t, e, tc.review))
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// fixedVerifier resolves nothing and answers every verification with res
// and err.
type fixedVerifier struct {
	res verifier.Result
	err error
}

func (fixedVerifier) Resolve(_ context.Context, ref name.Reference) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	return name.Digest{}, &verifier.UndecidedError{Op: "resolve", Ref: ref.String(), Reason: "unreachable", Err: context.Canceled}
}

func (v fixedVerifier) Verify(context.Context, name.Digest, verifier.AuthoritySet) (verifier.Result, error) {
	return v.res, v.err
}

// labelPolicies has every namespace with the same labels and no policy.
type labelPolicies map[string]string

func (l labelPolicies) Snapshot() policy.Snapshot { return l }
func (l labelPolicies) Namespace(string) (map[string]string, error) {
	return l, nil
}
func (labelPolicies) Requirements(string, map[string]string, imageref.Repo) []policy.Requirement {
	return nil
}

// TestFindingValuesWithoutGolden covers the reason codes no golden review
// produces: gates with a verifier or policy source that answers as asked.
func TestFindingValuesWithoutGolden(t *testing.T) {
	e := newEnv(t, configDefault)
	image := e.vars["Reg"] + "/team-a/app@" + e.vars["Signed"]
	digest, err := name.NewDigest(image)
	if err != nil {
		t.Fatal(err)
	}
	// A pod that passes restricted Pod Security, in team-a (ImagePolicy ci).
	pod := fmt.Sprintf(`{"metadata":{"name":"p"},"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},`+
		`"containers":[{"name":"a","image":%q,"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`, image)
	request := func(namespace, object string) *admissionv1.AdmissionRequest {
		return &admissionv1.AdmissionRequest{
			UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: namespace, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: []byte(object)},
		}
	}
	gate := func(v Verifier, p PolicySource, c ConfigSource) *Gate {
		g, err := NewGate(Options{Verifier: v, Policies: p, Config: c})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	signed := func(code Code, sev Severity) Finding {
		return Finding{Severity: sev, Code: code, Field: "spec.containers[0].image", Image: image, Policy: "ImagePolicy team-a/ci", Authorities: []string{"ci-key"}}
	}
	tests := []struct {
		name string
		gate *Gate
		req  *admissionv1.AdmissionRequest
		want []Finding
	}{
		{"namespace-missing", newTestGate(t), request("", pod), []Finding{{Severity: SeverityDeny, Code: CodeNamespaceMissing}}},
		{"namespace-lookup", gate(nopVerifier{}, notReady{}, nil), request("team-a", pod), []Finding{{Severity: SeverityRetry, Code: CodeNamespaceLookup}}},
		{"not-enough-signatures", gate(fixedVerifier{}, e.gate.policies, e.gate.config), request("team-a", pod),
			[]Finding{signed(CodeNotEnoughSignatures, SeverityDeny)}},
		{"registry-access-denied", gate(fixedVerifier{err: &verifier.NotVerifiedError{Digest: digest, Reason: "registry denied signgate read access", AccessDenied: true}}, e.gate.policies, e.gate.config),
			request("team-a", pod), []Finding{signed(CodeRegistryAccessDenied, SeverityDeny)}},
		{"registry-error", gate(fixedVerifier{err: errors.New("something else")}, e.gate.policies, e.gate.config), request("team-a", pod),
			[]Finding{signed(CodeRegistryError, SeverityDeny)}},
		{"static-fail", newSpellingGate(t, policy.UnmatchedAllow), request("team-a", strings.Replace(pod, image, "registry.example.com/app@"+spellingDigest, 1)),
			[]Finding{{Severity: SeverityDeny, Code: CodeStaticFail, Field: "spec.containers[0].image", Image: "registry.example.com/app@" + spellingDigest, Policy: "ClusterImagePolicy example"}}},
		{"pod-security-levels", gate(nopVerifier{}, labelPolicies{"pod-security.kubernetes.io/enforce": "bogus"}, StaticConfig{Config: mustConfig(t, "unmatchedImages: allow\n")}),
			request("team-a", pod), []Finding{{Severity: SeverityWarn, Code: CodePodSecurityLevels}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, got := tc.gate.ValidateFindings(t.Context(), tc.req)
			checkFindingLines(t, resp, got)
			if diff := cmp.Diff(tc.want, withoutMessage(nil, got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("findings (-want +got):\n%s\nresponse: %+v", diff, resp.Result)
			}
		})
	}
}

func mustConfig(t *testing.T, extra string) *policy.Config {
	t.Helper()
	cfg, err := policy.ParseConfig([]byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCodesDocumented: every reason code is in the table of
// docs/check-output.md.
func TestCodesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/check-output.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Codes {
		if !strings.Contains(string(doc), "| `"+string(c)+"` |") {
			t.Errorf("code %s is not in the table of docs/check-output.md", c)
		}
	}
}
