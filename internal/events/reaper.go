package events

import (
	"context"
	"fmt"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// MinRetention is the shortest time published events stay in the event log. GET /v1/events
// promises 30 days; and metering remembers which quota thresholds it announced in a billing
// period by their events (metering.Quotas.Thresholds), so they must outlive the longest
// period: a month and a merged sliver of under a week, 38 days.
const MinRetention = 40 * 24 * time.Hour

// Reaper deletes what the event pipeline no longer needs: published events older than
// Retention, and inbox rows and finished webhook deliveries older than Keep. The inbox must
// outlive any redelivery of its events, so Keep must exceed the Kafka topic's retention; 30
// days does by default. Unpublished events are never deleted, however old.
type Reaper struct {
	DB        *postgres.DB
	Clock     clock.Clock
	Keep      time.Duration // 30 days if 0
	Retention time.Duration // of published events in the event log (EVENTS_RETENTION); MinRetention if less
}

// Run deletes in batches until none is left, and answers how many rows went. It is a job;
// replicas may run it at once (SKIP LOCKED).
func (r *Reaper) Run(ctx context.Context) (int, error) {
	now := r.Clock.Now()
	keep := r.Keep
	if keep <= 0 {
		keep = 30 * 24 * time.Hour
	}
	retention := max(r.Retention, MinRetention)
	total := 0
	for _, step := range []struct {
		fn     string
		before time.Time
	}{
		{"app.reap_events", now.Add(-keep)},
		{"app.reap_outbox", now.Add(-retention)},
	} {
		n, err := r.DB.Reap(ctx, step.fn, step.before, 0)
		total += n
		if err != nil {
			return total, fmt.Errorf("events.reap: %w", err)
		}
	}
	return total, nil
}
