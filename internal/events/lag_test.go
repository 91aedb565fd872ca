package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// The lag metric's function answers when the oldest unpublished event occurred, of any
// tenant, and NULL when none waits; published events, however old, do not count.
func TestOutboxOldestUnpublished(t *testing.T) {
	h := newHarness(t)
	t.Cleanup(func() { h.exec("DELETE FROM outbox WHERE type = 'lag.test'") })
	oldest := func() *time.Time {
		t.Helper()
		var at *time.Time
		if err := h.db.Pool.QueryRow(context.Background(), "SELECT app.outbox_oldest_unpublished()").Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if at := oldest(); at != nil {
		t.Fatalf("oldest unpublished event with none waiting: %v", at)
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	insert := func(tenant uuid.UUID, age time.Duration, published bool) {
		var at *time.Time
		if published {
			at = &now
		}
		h.exec("INSERT INTO outbox (tenant_id, id, type, occurred_at, data, published_at) VALUES ($1, $2, 'lag.test', $3, '{}', $4)",
			tenant, uuid.New(), now.Add(-age), at)
	}
	a, b := uuid.New(), uuid.New()
	insert(a, time.Hour, true) // older, but published
	insert(a, time.Minute, false)
	insert(b, 10*time.Minute, false)
	insert(b, time.Second, false)
	if at := oldest(); at == nil || !at.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("oldest unpublished event at %v, want %v", at, now.Add(-10*time.Minute))
	}
}

// The function reads the first entry of a partial index, not the backlog.
func TestOutboxOldestUnpublishedUsesIndex(t *testing.T) {
	h := newHarness(t)
	plan := pgtest.ExplainFunction(t, h.owner, "app.outbox_oldest_unpublished()")
	if !strings.Contains(plan, "Limit") || !strings.Contains(plan, "outbox_unpublished_occurred_idx") || strings.Contains(plan, "Seq Scan") {
		t.Errorf("app.outbox_oldest_unpublished() does not read the first entry of outbox_unpublished_occurred_idx:\n%s", plan)
	}
}
