package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestPolicyFindings: a policy in warn or audit that would deny an image
// admits the pod, and the would-be denial is in the review's log line and
// in signgate_policy_findings_total; an enforced denial is counted with
// mode enforce (its line is in reason); a dry run is logged but not
// counted, and so is a mutating review.
func TestPolicyFindings(t *testing.T) {
	e := newEnv(t, configDefault)
	type count struct {
		policy, mode string
		result       Code
	}
	tests := []struct {
		name    string
		webhook Webhook
		review  string
		dryRun  bool
		allowed bool
		logged  []loggedFinding // the image findings of the log line
		counted []count         // series of the counter, each 1
	}{
		{
			name: "warn", webhook: WebhookValidate, review: "validate-pod-warn-mode", allowed: true,
			logged: []loggedFinding{{Mode: "warn", Code: CodeNotVerified, Policy: "ClusterImagePolicy/ci-warn", Field: "spec.containers[0].image", Image: "REGISTRY/team-a/unsigned@sha256:UNSIGNED"}},
			counted: []count{
				{"ClusterImagePolicy/ci-warn", "warn", CodeNotVerified},
				{"PodSecurity", "warn", CodePodSecurity},
				{"PodSecurity", "audit", CodePodSecurity},
			},
		},
		{
			name: "audit", webhook: WebhookValidate, review: "validate-pod-audit-mode", allowed: true,
			logged: []loggedFinding{{Mode: "audit", Code: CodeNotVerified, Policy: "ClusterImagePolicy/ci-audit", Field: "spec.containers[0].image", Image: "REGISTRY/team-a/unsigned@sha256:UNSIGNED"}},
			counted: []count{
				{"ClusterImagePolicy/ci-audit", "audit", CodeNotVerified},
				{"PodSecurity", "warn", CodePodSecurity},
				{"PodSecurity", "audit", CodePodSecurity},
			},
		},
		{
			name: "enforce", webhook: WebhookValidate, review: "validate-pod-unsigned", allowed: false,
			counted: []count{{"ImagePolicy/team-a/ci", "enforce", CodeNotVerified}},
		},
		{
			name: "dry run", webhook: WebhookValidate, review: "validate-pod-warn-mode", dryRun: true, allowed: true,
			logged: []loggedFinding{{Mode: "warn", Code: CodeNotVerified, Policy: "ClusterImagePolicy/ci-warn", Field: "spec.containers[0].image", Image: "REGISTRY/team-a/unsigned@sha256:UNSIGNED"}},
		},
		{
			name: "mutate", webhook: WebhookMutate, review: "mutate-pod-unknown-tag", allowed: true,
			logged: []loggedFinding{
				{Mode: "warn", Code: CodePinFailed, Policy: "none", Field: "spec.containers[0].image", Image: "REGISTRY/team-a/app:nope"},
				{Mode: "warn", Code: CodeImageInvalid, Policy: "none", Field: "spec.containers[2].image", Image: "UPPER::bad"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			body := e.review(t, tc.review)
			if tc.dryRun {
				body = withDryRun(t, body)
			}
			resp := e.postWith(t, tc.webhook, body, "", HandlerOptions{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Metrics: m})
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, tc.allowed, resp.Result)
			}

			var line struct {
				Findings        []loggedFinding `json:"findings"`
				FindingsOmitted int             `json:"findingsOmitted"`
			}
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, &buf)
			}
			var images []loggedFinding // Pod Security's lines are those of every review
			for _, f := range line.Findings {
				if f.Code != CodePodSecurity {
					f.Image = e.normalize(f.Image)
					images = append(images, f)
				}
			}
			if diff := cmp.Diff(tc.logged, images); diff != "" {
				t.Errorf("findings of the log line (-want +got):\n%s\n%s", diff, &buf)
			}
			if line.FindingsOmitted != 0 {
				t.Errorf("findingsOmitted = %d", line.FindingsOmitted)
			}

			want := map[string]float64{}
			for _, c := range tc.counted {
				want[fmt.Sprintf("policy=%s,mode=%s,result=%s", c.policy, c.mode, c.result)] = 1
			}
			if diff := cmp.Diff(want, findingCounts(t, reg)); diff != "" {
				t.Errorf("signgate_policy_findings_total (-want +got):\n%s", diff)
			}
		})
	}
}

// findingCounts returns the series of signgate_policy_findings_total in
// reg by their labels ("policy=…,mode=…,result=…").
func findingCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "signgate_policy_findings_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[fmt.Sprintf("policy=%s,mode=%s,result=%s", labels["policy"], labels["mode"], labels["result"])] = s.GetCounter().GetValue()
		}
	}
	return out
}

// withDryRun sets request.dryRun in an AdmissionReview.
func withDryRun(t *testing.T, body []byte) []byte {
	t.Helper()
	var review map[string]any
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatal(err)
	}
	review["request"].(map[string]any)["dryRun"] = true
	out, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFindingPolicy: the policy label of every kind of finding.
func TestFindingPolicy(t *testing.T) {
	tests := []struct {
		f      Finding
		want   string
		closed bool
	}{
		{Finding{Code: CodeNotVerified, Policy: "ClusterImagePolicy corp"}, "ClusterImagePolicy/corp", false},
		{Finding{Code: CodeStaticFail, Policy: "ImagePolicy team-a/ci"}, "ImagePolicy/team-a/ci", false},
		{Finding{Code: CodePolicyInvalid, Policy: "trust policies"}, "other", true},
		{Finding{Code: CodePodSecurity, Message: `violates PodSecurity "restricted:latest": …`}, "PodSecurity", true},
		{Finding{Code: CodePodSecurityLevels}, "PodSecurity", true},
		{Finding{Code: CodeHardening, Check: "runtimeClass"}, "hardening/runtimeClass", true},
		{Finding{Code: CodeHardening, Check: "madeUp"}, "hardening/madeUp", false},
		{Finding{Code: CodeImageUnmatched, Image: "r.example/a"}, "none", true},
		{Finding{Code: CodeNamespaceLookup}, "none", true},
	}
	for _, tc := range tests {
		if got, closed := findingPolicy(tc.f); got != tc.want || closed != tc.closed {
			t.Errorf("findingPolicy(%+v) = %q, %v; want %q, %v", tc.f, got, closed, tc.want, tc.closed)
		}
	}
}

// TestPolicyLabelsBounded: the first maxPolicyLabels policies keep their
// names, every later one is other; closed names never count.
func TestPolicyLabelsBounded(t *testing.T) {
	p := newPolicyLabels(maxPolicyLabels)
	cip := func(i int) Finding {
		return Finding{Code: CodeNotVerified, Policy: fmt.Sprintf("ClusterImagePolicy p%d", i)}
	}
	for i := range maxPolicyLabels {
		if got, want := p.label(cip(i)), fmt.Sprintf("ClusterImagePolicy/p%d", i); got != want {
			t.Fatalf("label %d = %q, want %q", i, got, want)
		}
	}
	for _, f := range []Finding{cip(maxPolicyLabels), {Code: CodeNotVerified, Policy: "ImagePolicy team-z/new"}, {Code: CodeHardening, Check: "madeUp"}} {
		if got := p.label(f); got != otherLabel {
			t.Errorf("label of %q after the bound = %q, want other", f.Policy+f.Check, got)
		}
	}
	if got := p.label(cip(0)); got != "ClusterImagePolicy/p0" {
		t.Errorf("label of a policy seen before the bound = %q", got)
	}
	for _, tc := range []struct {
		f    Finding
		want string
	}{
		{Finding{Code: CodePodSecurity}, "PodSecurity"},
		{Finding{Code: CodeHardening, Check: "resourceLimits"}, "hardening/resourceLimits"},
		{Finding{Code: CodeImageUnmatched}, "none"},
	} {
		if got := p.label(tc.f); got != tc.want {
			t.Errorf("label of %+v after the bound = %q, want %q", tc.f, got, tc.want)
		}
	}
	if len(p.seen) != maxPolicyLabels {
		t.Errorf("%d names kept, want %d", len(p.seen), maxPolicyLabels)
	}
}

// TestLoggedFindingsBounded: warn and audit findings only, at most
// maxLoggedFindings with a count of the rest, every field clipped.
func TestLoggedFindingsBounded(t *testing.T) {
	list := []Finding{{Severity: SeverityDeny, Code: CodeNotVerified, Policy: "ClusterImagePolicy corp"}, {Severity: SeverityRetry, Code: CodeRegistryUndecided}}
	long := strings.Repeat("é", maxLoggedField) // two bytes each
	for i := range maxLoggedFindings + 5 {
		sev := SeverityWarn
		if i%2 == 1 {
			sev = SeverityAudit
		}
		list = append(list, Finding{Severity: sev, Code: CodeNotVerified, Policy: "ImagePolicy team-a/" + long, Field: "spec.containers[0].image", Image: long, Message: "registry said: " + long})
	}
	out, omitted := loggedFindings(list)
	if len(out) != maxLoggedFindings || omitted != 5 {
		t.Fatalf("%d findings logged, %d omitted; want %d, 5", len(out), omitted, maxLoggedFindings)
	}
	for _, f := range out {
		if f.Mode != "warn" && f.Mode != "audit" {
			t.Errorf("mode %q logged", f.Mode)
		}
		for _, s := range []string{f.Policy, f.Image} {
			if len(s) > maxLoggedField+len("…") || !strings.HasSuffix(s, "…") || !utf8.ValidString(s) {
				t.Errorf("field not clipped to %d bytes: %d bytes %q", maxLoggedField, len(s), s)
			}
		}
	}
	if js, _ := json.Marshal(out); bytes.Contains(js, []byte("registry said")) {
		t.Errorf("message logged: %s", js)
	}
}
