package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
)

// The reaper deletes inbox rows older than Keep, across tenants, but not those of events
// still parked for a retry: their inbox row is what keeps a redelivery from running them
// twice.
func TestReaper(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC()
	a, b := uuid.New(), uuid.New()
	oldA, oldB, parkedB, recent := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	for _, r := range []struct {
		tenant, event uuid.UUID
		age           time.Duration
	}{{a, oldA, 40 * 24 * time.Hour}, {b, oldB, 31 * 24 * time.Hour}, {b, parkedB, 40 * 24 * time.Hour}, {a, recent, time.Hour}} {
		h.exec("INSERT INTO event_inbox (tenant_id, consumer, event_id, received_at) VALUES ($1, 'reaped', $2, $3)",
			r.tenant, r.event, now.Add(-r.age))
	}
	t.Cleanup(func() {
		h.exec("DELETE FROM event_retries WHERE consumer = 'reaped'")
		h.exec("DELETE FROM event_inbox WHERE consumer = 'reaped'")
	})
	h.exec(`INSERT INTO event_retries (tenant_id, consumer, event_id, event, attempts, next_attempt_at, parked_at)
	        VALUES ($1, 'reaped', $2, '{}', 1, $3, $3)`, b, parkedB, now)

	n, err := (&events.Reaper{DB: h.db, Clock: clock.NewFixed(now)}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("reaped %d rows, want 2", n)
	}
	for id, want := range map[uuid.UUID]int{oldA: 0, oldB: 0, parkedB: 1, recent: 1} {
		if got := h.count("SELECT count(*) FROM event_inbox WHERE event_id = $1", id); got != want {
			t.Errorf("inbox row %s: %d left, want %d", id, got, want)
		}
	}
}
