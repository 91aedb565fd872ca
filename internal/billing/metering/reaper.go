package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Reaper deletes what metering no longer needs, in batches like events.Reaper: dedupe keys
// received more than DedupeWindow ago, and raw events older than DedupeWindow whose billing
// period is invoiced (before the end of their tenant's last invoice). Rollups stay: they
// answer every range on 15-minute boundaries long after the raw events are gone.
type Reaper struct {
	DB    *postgres.DB
	Clock clock.Clock
}

// reapBatch is the most rows one statement deletes.
const reapBatch = 1000

// Run deletes until nothing is left to delete and answers how many rows went. Replicas may
// run it at once (SKIP LOCKED).
func (r *Reaper) Run(ctx context.Context) (int, error) {
	before := r.Clock.Now().Add(-DedupeWindow)
	total := 0
	for _, query := range []string{"SELECT app.reap_usage_dedupe($1, $2)", "SELECT app.reap_usage_events($1, $2)"} {
		n, err := r.reap(ctx, query, before)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (r *Reaper) reap(ctx context.Context, query string, before time.Time) (int, error) {
	total := 0
	for ctx.Err() == nil {
		var n int
		if err := r.DB.Pool.QueryRow(ctx, query, before, reapBatch).Scan(&n); err != nil {
			return total, fmt.Errorf("usage.reap: %w", err)
		}
		total += n
		if n < reapBatch {
			break
		}
	}
	return total, nil
}
