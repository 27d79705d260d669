package admission

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricLabelsBounded: reviews come from whoever reaches the port, so
// the label values taken from them come from a closed set. 60 reviews with
// random 64 KiB kinds and odd operations leave at most one series per
// known value plus "other", and no value longer than a kind name.
func TestMetricLabelsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(newTestGate(t), WebhookValidate, HandlerOptions{Metrics: m})
	random := func(n int) string {
		b := make([]byte, n/2)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	send := func(op, kind string) {
		t.Helper()
		review, err := json.Marshal(map[string]any{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]any{
				"uid": "u-" + random(8), "namespace": "team-a", "operation": op,
				"kind":   map[string]string{"group": "", "version": "v1", "kind": kind},
				"object": map[string]any{"spec": map[string]any{"containers": []any{map[string]string{"name": "a", "image": "r.example/a:v1"}}}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(string(review)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("review (operation %.20q, kind %.20q): HTTP %d %s", op, kind, rec.Code, rec.Body)
		}
	}
	for i := range 60 {
		send([]string{"CREATE", "create", "PATCH", random(64)}[i%4], random(64<<10))
	}
	send("CREATE", "Pod")
	send("DELETE", "Pod")

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "signgate_admission_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch op := labels["operation"]; op {
			case "CREATE", "UPDATE", "DELETE", "CONNECT", "other":
			default:
				t.Errorf("operation label %.40q outside the closed set", op)
			}
			if k := labels["kind"]; k != "other" && k != "Pod" {
				t.Errorf("kind label %.40q: want Pod or other", k)
			}
			series[labels["operation"]+" "+labels["kind"]+" "+labels["decision"]] = true
		}
	}
	for _, want := range []string{"CREATE other denied", "other other denied", "CREATE Pod denied", "DELETE Pod denied"} {
		if !series[want] {
			t.Errorf("no series %q; have %v", want, series)
		}
	}
	if len(series) > 6 {
		t.Errorf("%d series from 62 reviews, want at most 6: %v", len(series), series)
	}
}
