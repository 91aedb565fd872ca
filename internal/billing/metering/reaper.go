package metering

import (
	"context"
	"fmt"

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

// Run deletes until nothing is left to delete and answers how many rows went. Replicas may
// run it at once (SKIP LOCKED).
func (r *Reaper) Run(ctx context.Context) (int, error) {
	before := r.Clock.Now().Add(-DedupeWindow)
	total := 0
	for _, fn := range []string{"app.reap_usage_dedupe", "app.reap_usage_events"} {
		n, err := r.DB.Reap(ctx, fn, before, 0)
		total += n
		if err != nil {
			return total, fmt.Errorf("usage.reap: %w", err)
		}
	}
	return total, nil
}
