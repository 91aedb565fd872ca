package ratelimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the limiter's Prometheus series. Labels are policies and fixed reasons, never
// tenants: those would explode the label space.
type metrics struct {
	allowed     prometheus.Counter
	denied      *prometheus.CounterVec // by policy
	degraded    *prometheus.CounterVec // by reason and outcome
	denyCache   prometheus.Counter     // denials answered by the deny cache
	leased      prometheus.Counter     // admissions from a rate lease
	leaseLost   prometheus.Counter     // leased units that expired unused
	redis       prometheus.Histogram   // Redis call latency, timeouts included
	circuitOpen prometheus.Gauge       // 1 while decisions skip Redis
}

// Reasons a decision was degraded.
const (
	reasonTimeout = "timeout"      // Redis did not answer within Options.Timeout
	reasonError   = "error"        // Redis answered with an error, or the connection failed
	reasonCircuit = "circuit_open" // the breaker skipped Redis
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		allowed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_allowed_total",
			Help: "Requests the rate limiter allowed.",
		}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_denied_total",
			Help: "Requests the rate limiter denied, by the policy that denied.",
		}, []string{"policy"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_degraded_total",
			Help: "Decisions made without Redis, by reason (timeout, error, circuit_open) and outcome (allowed, denied).",
		}, []string{"reason", "outcome"}),
		denyCache: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_deny_cache_hits_total",
			Help: "Denials answered from the local deny cache, without Redis.",
		}),
		leased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_lease_admitted_total",
			Help: "Requests admitted from units a rate lease had already spent in Redis, without a call.",
		}),
		leaseLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratelimit_lease_units_expired_total",
			Help: "Units a rate lease had spent in Redis that expired unused: requests the limits would have admitted and did not.",
		}),
		redis: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ratelimit_redis_duration_seconds",
			Help:    "Latency of the rate limiter's Redis calls, timeouts included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
		circuitOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ratelimit_circuit_open",
			Help: "1 while the circuit breaker keeps the rate limiter off Redis.",
		}),
	}
	// Every degraded series starts at 0, so the first decision without Redis is an increase
	// an alert sees (increase() over a series that appears at 1 sees none).
	for _, reason := range []string{reasonTimeout, reasonError, reasonCircuit} {
		for _, outcome := range []string{"allowed", "denied"} {
			m.degraded.WithLabelValues(reason, outcome)
		}
	}
	var errsOut []error
	for _, c := range []prometheus.Collector{m.allowed, m.denied, m.degraded, m.denyCache, m.leased, m.leaseLost, m.redis, m.circuitOpen} {
		errsOut = append(errsOut, reg.Register(c))
	}
	return m, errors.Join(errsOut...)
}

func (m *metrics) record(d Decision) {
	switch {
	case !d.Allowed:
		m.denied.WithLabelValues(d.Policy).Inc()
	case d.call == nil || !d.call.peek: // a peek that would allow admits nothing
		m.allowed.Inc()
	}
}

func (m *metrics) recordDegraded(reason string, d Decision) {
	outcome := "denied"
	if d.Allowed {
		outcome = "allowed"
	}
	m.degraded.WithLabelValues(reason, outcome).Inc()
}
