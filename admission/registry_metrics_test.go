package admission

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// registrySeries gathers signgate_registry_request_duration_seconds as
// "registry operation" → sample count.
func registrySeries(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "signgate_registry_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["registry"]+" "+labels["operation"]] += m.GetHistogram().GetSampleCount()
		}
	}
	return got
}

// TestRegistryRequestDurationLabels: the registry label is a host given
// to SetRegistryHosts, canonical, else other; operations outside the
// verifier's set are other; a later call replaces the hosts.
func TestRegistryRequestDurationLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.RegistryRequestDuration("ghcr.io", "manifest", time.Millisecond) // before any hosts: other
	m.SetRegistryHosts([]string{"GHCR.io", "registry.example.com:5000", "docker.io"})
	m.RegistryRequestDuration("ghcr.io", "manifest", time.Millisecond)
	m.RegistryRequestDuration("ghcr.io:443", "blob", time.Millisecond)
	m.RegistryRequestDuration("registry.example.com:5000", "token", time.Millisecond)
	m.RegistryRequestDuration("registry.example.com", "token", time.Millisecond) // another port: another host
	m.RegistryRequestDuration("index.docker.io", "ping", time.Millisecond)
	m.RegistryRequestDuration("evil.example", "manifest", time.Millisecond)
	m.RegistryRequestDuration("ghcr.io", "delete", time.Millisecond)
	m.SetRegistryHosts([]string{"quay.io"})
	m.RegistryRequestDuration("ghcr.io", "tags", time.Millisecond)
	m.RegistryRequestDuration("quay.io", "referrers", time.Millisecond)
	want := map[string]uint64{
		"other manifest":                  2,
		"ghcr.io manifest":                1,
		"ghcr.io blob":                    1,
		"registry.example.com:5000 token": 1,
		"other token":                     1,
		"index.docker.io ping":            1,
		"ghcr.io other":                   1,
		"other tags":                      1,
		"quay.io referrers":               1,
	}
	if diff := cmp.Diff(want, registrySeries(t, reg)); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

// TestRegistryHostsCap: of more hosts than MaxRegistryHosts, the first
// MaxRegistryHosts are labels and the rest other.
func TestRegistryHostsCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for i := range MaxRegistryHosts + 10 {
		hosts = append(hosts, fmt.Sprintf("r%03d.example.com", i))
	}
	m.SetRegistryHosts(hosts)
	for _, h := range hosts {
		m.RegistryRequestDuration(h, "manifest", time.Millisecond)
	}
	got := registrySeries(t, reg)
	if len(got) != MaxRegistryHosts+1 {
		t.Errorf("%d series, want %d (the cap and other)", len(got), MaxRegistryHosts+1)
	}
	if got["other manifest"] != 10 {
		t.Errorf("other: %d requests, want 10", got["other manifest"])
	}
	if got[hosts[MaxRegistryHosts-1]+" manifest"] != 1 || got[hosts[MaxRegistryHosts]+" manifest"] != 0 {
		t.Errorf("the first %d hosts are labels, the next is not: %v", MaxRegistryHosts, got)
	}
}

// TestAdmissionDurationBuckets: the buckets reach the webhook's 30s limit
// and keep the sub-millisecond ones.
func TestAdmissionDurationBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.observeAdmission("validate", "CREATE", "Pod", "allowed", 29*time.Second)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "signgate_admission_duration_seconds" {
			continue
		}
		var bounds []float64
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		for _, want := range []float64{.0005, 10, 15, 20, 25, 30} {
			if !slices.Contains(bounds, want) {
				t.Errorf("no bucket %g: %v", want, bounds)
			}
		}
		if last := bounds[len(bounds)-1]; last != 30 {
			t.Errorf("last bucket %g, want 30", last)
		}
		return
	}
	t.Fatal("signgate_admission_duration_seconds not gathered")
}
