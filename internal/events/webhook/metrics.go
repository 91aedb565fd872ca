package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook deliveries' Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	attempts  *prometheus.CounterVec
	duration  prometheus.Histogram
	exhausted prometheus.Counter
	disabled  prometheus.Counter
}

// Attempt outcomes, the values of the outcome label.
const (
	outcomeSuccess   = "success"       // a 2xx answer
	outcomeHTTPError = "http_error"    // any other answer, redirects included
	outcomeTimeout   = "timeout"       // no answer in time
	outcomeNetwork   = "network_error" // no connection, TLS failure, reset
	outcomeRefused   = "refused"       // the address is private, loopback or link-local
)

// NewMetrics builds the metrics and registers them on reg (not at all if reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_delivery_attempts_total",
			Help: "Webhook delivery attempts by outcome: success, http_error, timeout, network_error, refused.",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhook_delivery_duration_seconds",
			Help:    "Time a webhook delivery attempt took, answer or not.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
		exhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_deliveries_failed_total",
			Help: "Webhook deliveries given up: every attempt of their schedule failed, or the receiver answered 410 Gone.",
		}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhook_endpoints_disabled_total",
			Help: "Webhook endpoints disabled automatically: failing without a break, or gone (410).",
		}),
	}
	// Every outcome's series starts at 0, so a rate over it exists before the first attempt.
	for _, o := range []string{outcomeSuccess, outcomeHTTPError, outcomeTimeout, outcomeNetwork, outcomeRefused} {
		m.attempts.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.duration, m.exhausted, m.disabled)
	}
	return m
}

func (m *Metrics) attempt(outcome string, d time.Duration) {
	if m != nil {
		m.attempts.WithLabelValues(outcome).Inc()
		m.duration.Observe(d.Seconds())
	}
}

func (m *Metrics) deliveryFailed() {
	if m != nil {
		m.exhausted.Inc()
	}
}

func (m *Metrics) endpointDisabled() {
	if m != nil {
		m.disabled.Inc()
	}
}
