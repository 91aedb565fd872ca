package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
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

// Published events stay in the event log for the retention, then go; unpublished events stay
// whatever their age, since they have not reached their consumers yet. Two tenants, so the
// reaper is seen to work across them.
func TestReaperOutboxRetention(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC()
	a, b := uuid.New(), uuid.New()
	day := 24 * time.Hour
	type row struct {
		tenant    uuid.UUID
		age       time.Duration
		published bool
		kept      bool
	}
	rows := map[uuid.UUID]row{
		uuid.New(): {a, 45 * day, true, false},
		uuid.New(): {b, 41 * day, true, false},
		uuid.New(): {a, 39 * day, true, true},  // within the retention
		uuid.New(): {b, time.Hour, true, true}, // recent
		uuid.New(): {a, 90 * day, false, true}, // old but never published
		uuid.New(): {b, 41 * day, false, true},
	}
	for id, r := range rows {
		var published *time.Time
		if r.published {
			published = &now
		}
		h.exec("INSERT INTO outbox (tenant_id, id, type, occurred_at, data, published_at) VALUES ($1, $2, 'reaper.test', $3, '{}', $4)",
			r.tenant, id, now.Add(-r.age), published)
	}
	t.Cleanup(func() { h.exec("DELETE FROM outbox WHERE type = 'reaper.test'") })

	reaper := &events.Reaper{DB: h.db, Clock: clock.NewFixed(now), Retention: 40 * day}
	if _, err := reaper.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, r := range rows {
		want := 0
		if r.kept {
			want = 1
		}
		if got := h.count("SELECT count(*) FROM outbox WHERE id = $1", id); got != want {
			t.Errorf("event of tenant %s, %s old, published %v: %d left, want %d", r.tenant, r.age, r.published, got, want)
		}
	}

	// A retention under the minimum (40 days) is raised to it: the 39-day-old event stays.
	reaper.Retention = day
	if _, err := reaper.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.count("SELECT count(*) FROM outbox WHERE type = 'reaper.test'"); got != 4 {
		t.Errorf("%d events left after a 1-day retention, want the 4 kept before", got)
	}
}

// More than a batch of expired events goes in one run, a statement per batch.
func TestReaperOutboxBatches(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC()
	h.exec(`INSERT INTO outbox (tenant_id, id, type, occurred_at, data, published_at)
	        SELECT $1, gen_random_uuid(), 'reaper.test', $2, '{}', $3 FROM generate_series(1, 2500)`,
		uuid.New(), now.Add(-45*24*time.Hour), now)
	t.Cleanup(func() { h.exec("DELETE FROM outbox WHERE type = 'reaper.test'") })
	if _, err := (&events.Reaper{DB: h.db, Clock: clock.NewFixed(now)}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.count("SELECT count(*) FROM outbox WHERE type = 'reaper.test'"); got != 0 {
		t.Errorf("%d expired events left", got)
	}
}

// Each reaping function finds its batch through an index and deletes it by ctid: no step
// reads the whole table, however large it grows.
func TestReapersUseIndexes(t *testing.T) {
	h := newHarness(t)
	for fn, index := range map[string]string{
		"app.reap_outbox(timestamptz, int)": "outbox_published_occurred_idx",
		"app.reap_events(timestamptz, int)": "event_inbox_received_idx",
	} {
		plan := pgtest.ExplainFunction(t, h.owner, fn)
		if !strings.Contains(plan, index) || !strings.Contains(plan, "Tid Scan") ||
			strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Bitmap Heap Scan") {
			t.Errorf("%s does not find its batch through %s and delete it by ctid:\n%s", fn, index, plan)
		}
	}
}
