package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
)

// The in-process transport's consumers commit without waiting for the disk, since the
// relay's mark comes after them in the log; the Kafka transport's, whose offsets are
// committed in the broker, and the retrier's, which no mark follows, wait for it.
func TestConsumerCommitDurability(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := newHarness(t)
			var def string
			if err := h.db.Pool.QueryRow(context.Background(), "SELECT current_setting('synchronous_commit')").Scan(&def); err != nil {
				t.Fatal(err)
			}
			if def == "off" {
				t.Skip("synchronous_commit is off by default here: nothing to tell apart")
			}
			var (
				mu      sync.Mutex
				setting = map[uuid.UUID]string{} // event → synchronous_commit when it was applied
				failed  bool
			)
			consumer := name("durability")
			failing := uuid.New()
			cs := h.consumers(events.Consumer{Name: consumer, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
				var s string
				if err := tx.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&s); err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if e.Tenant() == failing && !failed {
					failed = true
					return errors.New("first attempt fails")
				}
				setting[e.ID] = s
				return nil
			}})
			transport := tr.new(t, cs)
			startConsumers(t, cs, transport)
			run(t, h.relay(transport).Run)

			many, one := uuid.New(), uuid.New()
			h.appendEvents(many, "test.durability", 0, 3, 3) // a run: applyRun
			h.appendEvents(one, "test.durability", 0, 1, 1)  // a single event: settle
			h.appendEvents(failing, "test.durability", 0, 1, 1)
			waitFor(t, 30*time.Second, "5 events applied", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(setting) == 5
			})

			rows, err := h.owner.Query(context.Background(), "SELECT id, tenant_id FROM outbox WHERE type = 'test.durability' AND tenant_id = ANY($1)",
				[]uuid.UUID{many, one, failing})
			if err != nil {
				t.Fatal(err)
			}
			ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]uuid.UUID, error) {
				var v [2]uuid.UUID
				return v, r.Scan(&v[0], &v[1])
			})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, v := range ids {
				want := def
				if tr.name == "inprocess" && v[1] != failing {
					want = "off"
				}
				if got := setting[v[0]]; got != want {
					t.Errorf("tenant %s event %s applied with synchronous_commit %q, want %q", v[1], v[0], got, want)
				}
			}
		})
	}
}
