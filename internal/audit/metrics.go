package audit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the background audit's metrics; a nil *Metrics records
// nothing.
type Metrics struct {
	scans    *prometheus.CounterVec
	last     prometheus.Gauge
	duration prometheus.Gauge
	results  *prometheus.GaugeVec
	leader   prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_audit_scans_total",
			Help: "Background audit scans by result (success, error).",
		}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signgate_audit_last_success_timestamp_seconds",
			Help: "When the last background audit scan that wrote its PolicyReports finished (Unix time); 0 before the first.",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signgate_audit_last_duration_seconds",
			Help: "How long the last successful background audit scan took.",
		}),
		results: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "signgate_audit_results",
			Help: "PolicyReport results of the last successful scan by result (pass, fail, warn, error).",
		}, []string{"result"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signgate_audit_leader",
			Help: "1 while this replica holds the audit Lease and scans, else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{m.scans, m.last, m.duration, m.results, m.leader} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) scan(ok bool, start time.Time, counts map[string]int) {
	if m == nil {
		return
	}
	if !ok {
		m.scans.WithLabelValues("error").Inc()
		return
	}
	m.scans.WithLabelValues("success").Inc()
	m.last.Set(float64(time.Now().Unix()))
	m.duration.Set(time.Since(start).Seconds())
	for _, res := range []string{resultPass, resultFail, resultWarn, resultError} {
		m.results.WithLabelValues(res).Set(float64(counts[res]))
	}
}

func (m *Metrics) leading(on bool) {
	if m == nil {
		return
	}
	if on {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}
