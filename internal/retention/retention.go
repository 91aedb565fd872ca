// Package retention deletes, table by table, what the service no longer needs, so that no
// table grows without bound. Each table has a policy (how long a row is kept, counted from
// which of its times) and a reaping function in the database that deletes one batch by
// ctid (migrations 00012, 00016, 00018, 00019); the job calls each until a call deletes
// less than a full batch. The events and idempotency reapers (internal/events,
// internal/idempotency) are the same pattern for their tables. See docs/lifecycle.md.
package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Policy is a table's retention: rows older than Keep (by the reaping function's rule)
// are deleted by Function, a database function of (before timestamptz, limit int).
type Policy struct {
	Table    string
	Keep     time.Duration
	Function string
}

const day = 24 * time.Hour

// Policies are the defaults (docs/operations.md); Reaper.AuditRetention overrides the
// audit log's.
func Policies(auditRetention time.Duration) []Policy {
	return []Policy{
		{"audit_log", auditRetention, "app.reap_audit_log"},
		{"refresh_tokens", 1 * day, "app.reap_refresh_tokens"},
		{"event_dead_letters", 90 * day, "app.reap_event_dead_letters"},
		{"flag_audit", auditRetention, "app.reap_flag_audit"},
		{"stripe_events", 90 * day, "app.reap_stripe_events"},
		{"stripe_usage_reports", 60 * day, "app.reap_stripe_usage_reports"},
		{"usage_rollups", 760 * day, "app.reap_usage_rollups"},
		{"webhook_deliveries", 30 * day, "app.reap_abandoned_deliveries"},
		{"tenant_export_chunks", 0, "app.expire_tenant_exports"}, // at each export's own expiry
	}
}

// Reaper runs every policy.
type Reaper struct {
	DB       *postgres.DB
	Clock    clock.Clock
	Policies []Policy
	Batch    int // rows per call (1,000 if 0)
	Metrics  *Metrics
}

// Metrics count the rows deleted per table.
type Metrics struct {
	Deleted *prometheus.CounterVec
	LastRun *prometheus.GaugeVec
}

// NewMetrics registers the retention metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_rows_deleted_total", Help: "Rows deleted by the retention job, by table.",
		}, []string{"table"}),
		LastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "retention_last_success_timestamp_seconds", Help: "When the retention job last finished a table without error.",
		}, []string{"table"}),
	}
	reg.MustRegister(m.Deleted, m.LastRun)
	return m
}

// Run applies every policy; it is a job, and replicas may run it at once (SKIP LOCKED).
// A table's failure does not stop the others; the first error is answered.
func (r *Reaper) Run(ctx context.Context) (int, error) {
	now := r.Clock.Now()
	total := 0
	var first error
	for _, p := range r.Policies {
		n, err := r.reap(ctx, p, now.Add(-p.Keep))
		total += n
		if err != nil && first == nil {
			first = err
		}
		if err == nil && r.Metrics != nil {
			r.Metrics.LastRun.WithLabelValues(p.Table).Set(float64(now.Unix()))
		}
	}
	return total, first
}

func (r *Reaper) reap(ctx context.Context, p Policy, before time.Time) (int, error) {
	n, err := r.DB.Reap(ctx, p.Function, before, r.Batch)
	if r.Metrics != nil && n > 0 {
		r.Metrics.Deleted.WithLabelValues(p.Table).Add(float64(n))
	}
	if err != nil {
		return n, fmt.Errorf("retention %s: %w", p.Table, err)
	}
	return n, nil
}
