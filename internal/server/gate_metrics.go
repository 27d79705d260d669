package server

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/policy"
)

// buildInfo is signgate_build_info: 1, labelled with the version
// (`signgate version`'s; "unknown" when not given), the VCS revision the
// binary was built from ("unknown" when not recorded) and the Go version.
func buildInfo(version string) prometheus.Collector {
	if version == "" {
		version = "unknown"
	}
	revision := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "signgate_build_info",
		Help:        "Always 1, labelled with the version, VCS revision and Go version signgate was built with.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

// summarizer is a policy source that describes its compiled view
// (policy.ClusterSource, policy.FileSource).
type summarizer interface {
	Summary() policy.Summary
}

var policiesDesc = prometheus.NewDesc("signgate_policies",
	"ClusterImagePolicies, ImagePolicies and TrustRoots of the current policy view by kind and state "+
		"(ready; invalid: rejected by the compiler, its images are denied).",
	[]string{"kind", "state"}, nil)

// policiesCollector exports the policy source's counts at scrape time.
type policiesCollector struct {
	summary func() policy.Summary
}

func (c policiesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- policiesDesc }

func (c policiesCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.summary()
	for _, k := range []struct {
		kind  string
		count policy.Count
	}{
		{policy.KindClusterImagePolicy, s.ClusterImagePolicies},
		{policy.KindImagePolicy, s.ImagePolicies},
		{policy.KindTrustRoot, s.TrustRoots},
	} {
		ch <- prometheus.MustNewConstMetric(policiesDesc, prometheus.GaugeValue, float64(k.count.Ready), k.kind, "ready")
		ch <- prometheus.MustNewConstMetric(policiesDesc, prometheus.GaugeValue, float64(k.count.Invalid), k.kind, "invalid")
	}
}

var certExpiryDesc = prometheus.NewDesc("signgate_certificate_expiry_timestamp_seconds",
	"NotAfter, in Unix seconds, of the webhook's serving certificate (certificate=serving) and of the earliest-expiring CA "+
		"of --client-ca-file when set (certificate=client_ca), as last loaded.",
	[]string{"certificate"}, nil)

// certExpiryCollector exports the certificates' NotAfter at scrape time;
// a zero time (nothing loaded) exports nothing.
type certExpiryCollector struct {
	serving  func() time.Time
	clientCA func() time.Time // nil without --client-ca-file
}

func (c certExpiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c certExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cert := range []struct {
		name     string
		notAfter func() time.Time
	}{{"serving", c.serving}, {"client_ca", c.clientCA}} {
		if cert.notAfter == nil {
			continue
		}
		if t := cert.notAfter(); !t.IsZero() {
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(t.Unix()), cert.name)
		}
	}
}
