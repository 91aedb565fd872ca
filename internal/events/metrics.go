package events

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the event pipeline's Prometheus metrics. A nil *Metrics records nothing, so
// tests that do not look at metrics need not build one.
type Metrics struct {
	outboxLag   prometheus.Gauge
	published   prometheus.Counter
	relayDelay  prometheus.Histogram
	consumed    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
}

// NewMetrics builds the metrics and registers them on reg (not at all if reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outboxLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "events_outbox_lag_seconds",
			Help: "Age of the oldest event in the outbox not yet published (0 when none is waiting).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "events_published_total",
			Help: "Events the relay published and marked published.",
		}),
		relayDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "events_relay_delay_seconds",
			Help:    "Time from an event's occurrence to its publication.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_consumed_total",
			Help: "Events delivered to a consumer, by outcome: applied, duplicate (taken in before), parked (waiting for a retry), skipped (not for this consumer), retried (applied on a later attempt).",
		}, []string{"consumer", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_consumer_failures_total",
			Help: "Attempts of a consumer to apply an event that failed.",
		}, []string{"consumer"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_dead_letters_total",
			Help: "Events a consumer gave up on after its last attempt, moved to event_dead_letters.",
		}, []string{"consumer"}),
	}
	if reg != nil {
		reg.MustRegister(m.outboxLag, m.published, m.relayDelay, m.consumed, m.failures, m.deadLetters)
	}
	return m
}

// addConsumer starts a consumer's series at 0, so that they exist
// before the first failure: an alert's increase() over a series that appears at 1 sees no
// increase, and an absent series looks like a consumer that was never there.
func (m *Metrics) addConsumer(consumer string) {
	if m != nil {
		m.failures.WithLabelValues(consumer)
		m.deadLetters.WithLabelValues(consumer)
		for _, o := range []outcome{applied, duplicate, parked, skipped, retried, dead} {
			m.consumed.WithLabelValues(consumer, string(o))
		}
	}
}

func (m *Metrics) setOutboxLag(d time.Duration) {
	if m != nil {
		m.outboxLag.Set(max(d, 0).Seconds())
	}
}

func (m *Metrics) publishedEvents(evs []Event, at time.Time) {
	if m == nil {
		return
	}
	m.published.Add(float64(len(evs)))
	for _, e := range evs {
		m.relayDelay.Observe(max(at.Sub(e.OccurredAt), 0).Seconds())
	}
}

func (m *Metrics) consumedEvent(consumer string, o outcome) { m.consumedEvents(consumer, o, 1) }

func (m *Metrics) consumedEvents(consumer string, o outcome, n int) {
	if m != nil && n > 0 {
		m.consumed.WithLabelValues(consumer, string(o)).Add(float64(n))
	}
}

func (m *Metrics) failed(consumer string) {
	if m != nil {
		m.failures.WithLabelValues(consumer).Inc()
	}
}

func (m *Metrics) deadLettered(consumer string) {
	if m != nil {
		m.deadLetters.WithLabelValues(consumer).Inc()
	}
}
