package events

import (
	"context"
	"fmt"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Reaper deletes what the event pipeline no longer needs: inbox rows and finished webhook
// deliveries older than Keep. The inbox must outlive any redelivery of its events, so Keep
// must exceed the Kafka topic's retention; 30 days does by default.
type Reaper struct {
	DB    *postgres.DB
	Clock clock.Clock
	Keep  time.Duration // 30 days if 0
}

// Run deletes in batches until none is left, and answers how many rows went. It is a job;
// replicas may run it at once (SKIP LOCKED).
func (r *Reaper) Run(ctx context.Context) (int, error) {
	keep := r.Keep
	if keep <= 0 {
		keep = 30 * 24 * time.Hour
	}
	before := r.Clock.Now().Add(-keep)
	const batch = 5000
	total := 0
	for ctx.Err() == nil {
		var n int
		if err := r.DB.Pool.QueryRow(ctx, "SELECT app.reap_events($1, $2)", before, batch).Scan(&n); err != nil {
			return total, fmt.Errorf("events.reap: %w", err)
		}
		total += n
		if n < batch {
			break
		}
	}
	return total, nil
}
