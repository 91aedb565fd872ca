package invoicing

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the closer's, for the alert on billing periods that fail to close.
type Metrics struct {
	closeFailures prometheus.Counter
	failing       prometheus.Gauge
}

// NewMetrics registers the invoicing metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		closeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_period_close_failures_total",
			Help: "Attempts to finalize a billing period into an invoice that failed (each is retried on the next run).",
		}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_periods_failing",
			Help: "Billing periods the last closer run on this replica failed to finalize.",
		}),
	}
	reg.MustRegister(m.closeFailures, m.failing)
	return m
}
