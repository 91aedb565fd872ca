package mail

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the mailer does. A nil *Metrics counts nothing.
type Metrics struct {
	sent     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	deadMail *prometheus.CounterVec
}

// NewMetrics registers the mailer's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mail_attempts_total", Help: "Mail send attempts, by template and outcome (sent, failed).",
		}, []string{"template", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mail_send_duration_seconds", Help: "Time of one SMTP send, connection included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 8),
		}, []string{"template"}),
		deadMail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mail_dead_total", Help: "Mail given up on after its last attempt.",
		}, []string{"template"}),
	}
	reg.MustRegister(m.sent, m.duration, m.deadMail)
	return m
}

func (m *Metrics) observe(template string, err error, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "sent"
	if err != nil {
		outcome = "failed"
	}
	m.sent.WithLabelValues(template, outcome).Inc()
	m.duration.WithLabelValues(template).Observe(d.Seconds())
}

func (m *Metrics) dead(template string) {
	if m == nil {
		return
	}
	m.deadMail.WithLabelValues(template).Inc()
}
