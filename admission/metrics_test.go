package admission

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricNames: exactly the names documented in docs/admission.md, on the caller's
// registry.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.CacheRequest("verdict", "hit")
	m.RegistryRequest("manifest", 200)
	m.Verification("verified")
	m.ConfigReload("success")
	m.Panic("verify")
	m.RegistryRequestDuration("ghcr.io", "manifest", time.Millisecond)
	m.observeAdmission("validate", "CREATE", "Pod", "allowed", 0)
	m.observeFindings([]Finding{{Severity: SeverityWarn, Code: CodeNotVerified, Policy: "ClusterImagePolicy corp"}})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		got = append(got, f.GetName())
	}
	want := []string{
		"signgate_admission_duration_seconds",
		"signgate_admission_requests_total",
		"signgate_cache_requests_total",
		"signgate_config_reloads_total",
		"signgate_panics_total",
		"signgate_policy_findings_total",
		"signgate_registry_request_duration_seconds",
		"signgate_registry_requests_total",
		"signgate_verifications_total",
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric names (-want +got):\n%s", diff)
	}
	var nilMetrics *Metrics // a nil *Metrics records nothing and does not panic
	nilMetrics.CacheRequest("tag", "miss")
	nilMetrics.observeAdmission("mutate", "CREATE", "Pod", "allowed", 0)
	nilMetrics.observeFindings([]Finding{{Severity: SeverityDeny, Code: CodeImageEmpty}})
	nilMetrics.SetRegistryHosts([]string{"ghcr.io"})
	nilMetrics.RegistryRequestDuration("ghcr.io", "blob", time.Second)
}

// TestOneLogLinePerAdmission: the boundary logs one line per review with
// the fields operators search by.
func TestOneLogLinePerAdmission(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(newTestGate(t), WebhookValidate, HandlerOptions{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	body := strings.Replace(podReview, "%s", `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"r.example/a:v1"}]}}`, 1)
	req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(httptest.NewRecorder(), req)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), &buf)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uid", "namespace", "kind", "operation", "decision", "images", "duration_seconds"} {
		if _, ok := line[k]; !ok {
			t.Errorf("log line lacks %q: %s", k, lines[0])
		}
	}
	if line["decision"] != "denied" || line["uid"] != "u1" || line["kind"] != "Pod" {
		t.Errorf("log line = %s", lines[0])
	}
	if _, ok := line["duration_seconds"].(float64); !ok {
		t.Errorf("duration_seconds is %T, want a number (seconds): %s", line["duration_seconds"], lines[0])
	}
}
