package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/policy"
)

// trustRootStatuser is a policy source that fetches TUF TrustRoots
// (policy.ClusterSource).
type trustRootStatuser interface {
	TrustRootStatus() []policy.TrustRootStatus
}

var (
	trustRootAge = prometheus.NewDesc("signgate_trustroot_age_seconds",
		"Seconds since the trusted root a TUF TrustRoot uses was fetched: it grows while the mirror cannot be read (the last good trusted root is kept). Absent before the first fetch.",
		[]string{"trustroot"}, nil)
	trustRootFailing = prometheus.NewDesc("signgate_trustroot_refresh_failing",
		"1 when the last fetch of a TUF TrustRoot's repository failed, else 0.",
		[]string{"trustroot"}, nil)
)

// trustRootCollector exports the TUF TrustRoots' state at scrape time.
type trustRootCollector struct {
	status func() []policy.TrustRootStatus
	now    func() time.Time
}

func newTrustRootCollector(status func() []policy.TrustRootStatus) *trustRootCollector {
	return &trustRootCollector{status: status, now: time.Now}
}

func (c *trustRootCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- trustRootAge
	ch <- trustRootFailing
}

func (c *trustRootCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, st := range c.status() {
		failing := 0.0
		if st.Err != nil {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(trustRootFailing, prometheus.GaugeValue, failing, st.Name)
		if !st.Fetched.IsZero() {
			ch <- prometheus.MustNewConstMetric(trustRootAge, prometheus.GaugeValue, now.Sub(st.Fetched).Seconds(), st.Name)
		}
	}
}
