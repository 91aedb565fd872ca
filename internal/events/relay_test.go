package events_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// recorder is a transport that keeps what is published.
type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) Publish(_ context.Context, evs []events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
	return nil
}

func (r *recorder) Consume(ctx context.Context, _ string, _ events.Deliver) error {
	<-ctx.Done()
	return nil
}

func (r *recorder) published() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.evs...)
}

// The relay publishes in commit order: an event committed after an earlier transaction that
// is still open waits for it, so it can never overtake it (or be skipped past by a cursor).
func TestRelayWaitsForOpenTransactions(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	tenantA, tenantB := uuid.New(), uuid.New()
	rec := &recorder{}
	relay := h.relay(rec)

	// A's transaction takes its id first and stays open while B's commits.
	open, err := h.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(ctx)
	if _, err := open.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenantA.String()); err != nil {
		t.Fatal(err)
	}
	if err := h.outbox.Append(ctx, open, tenantA, "test.first", seqData{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	h.appendEvents(tenantB, "test.second", 2, 1, 1)

	for range 3 {
		if _, err := relay.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.published(); len(got) != 0 {
		t.Fatalf("published %d events while an older transaction is open, want 0: %+v", len(got), got)
	}

	if err := open.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both events published", func() bool {
		if _, err := relay.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return len(rec.published()) == 2
	})
	got := rec.published()
	if got[0].Type != "test.first" || got[1].Type != "test.second" {
		t.Errorf("published %s then %s, want test.first then test.second", got[0].Type, got[1].Type)
	}
	if *got[0].TenantID != tenantA || *got[1].TenantID != tenantB {
		t.Errorf("tenants %v, %v; want %v, %v", *got[0].TenantID, *got[1].TenantID, tenantA, tenantB)
	}
	if n := h.count("SELECT count(*) FROM outbox WHERE published_at IS NULL"); n != 0 {
		t.Errorf("%d events left unpublished", n)
	}
}

// The horizon is this database's: a transaction of another database on the same server,
// which cannot write this outbox, does not hold publication back however long it stays open.
func TestRelayIgnoresOtherDatabases(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	rec := &recorder{}
	relay := h.relay(rec)

	other, err := pgx.Connect(ctx, pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var otherDB, ourDB string
	if err := other.QueryRow(ctx, "SELECT current_database()").Scan(&otherDB); err != nil {
		t.Fatal(err)
	}
	if err := h.owner.QueryRow(ctx, "SELECT current_database()").Scan(&ourDB); err != nil {
		t.Fatal(err)
	}
	if otherDB == ourDB {
		t.Fatalf("the server's database %s is the test's own", otherDB)
	}
	open, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback(ctx)
	// The transaction takes an id, older than the events below, and keeps it.
	if _, err := open.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	tenant := uuid.New()
	h.appendEvents(tenant, "test.elsewhere", 0, 3, 1)

	waitFor(t, 20*time.Second, "the events published while the other database's transaction is open", func() bool {
		if _, err := relay.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return len(rec.published()) == 3
	})
	for i, e := range rec.published() {
		if e.Type != "test.elsewhere" || *e.TenantID != tenant {
			t.Errorf("event %d: %s of %v, want test.elsewhere of %s", i, e.Type, e.TenantID, tenant)
		}
	}
}

// The relay reads across tenants through app.outbox_unpublished and marks through
// app.outbox_mark_published: SECURITY DEFINER functions, so they must be narrow. The runtime
// role cannot read the outbox across tenants by itself, the functions answer only unpublished
// events with the envelope's columns, mark only what they are given, and no role but the
// runtime role may run them.
func TestRelayCrossTenantFunctions(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	a, b := uuid.New(), uuid.New()
	h.appendEvents(a, "test.a", 0, 2, 2)
	h.appendEvents(b, "test.b", 0, 1, 1)
	err := h.db.InTenantTx(ctx, postgres.PlatformTenant, func(tx pgx.Tx) error {
		return h.outbox.Append(ctx, tx, postgres.PlatformTenant, "test.platform", seqData{})
	})
	if err != nil {
		t.Fatal(err)
	}
	var published uuid.UUID
	if err := h.owner.QueryRow(ctx, "SELECT id FROM outbox WHERE tenant_id = $1 ORDER BY id LIMIT 1", a).Scan(&published); err != nil {
		t.Fatal(err)
	}
	h.exec("UPDATE outbox SET published_at = now() WHERE id = $1", published)

	var n int
	if err := h.db.Pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n); err == nil || !strings.Contains(err.Error(), "no tenant") {
		t.Errorf("the runtime role read the outbox without a tenant: n=%d err=%v", n, err)
	}

	var types []string
	waitFor(t, 20*time.Second, "the three unpublished events below the horizon", func() bool {
		rows, _ := h.db.Pool.Query(ctx, "SELECT type FROM app.outbox_unpublished('0', $1, 100)", uuid.Nil)
		var err error
		if types, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		return len(types) == 3
	})
	if strings.Join(types, ",") != "test.a,test.b,test.platform" {
		t.Errorf("unpublished events %v, want test.a, test.b, test.platform in commit order", types)
	}

	var result string
	if err := h.owner.QueryRow(ctx, "SELECT pg_get_function_result('app.outbox_unpublished(xid8, uuid, int)'::regprocedure)").Scan(&result); err != nil {
		t.Fatal(err)
	}
	if want := "TABLE(tenant_id uuid, id uuid, type text, occurred_at timestamp with time zone, data jsonb, txid xid8)"; result != want {
		t.Errorf("app.outbox_unpublished returns %s, want only the envelope and its position: %s", result, want)
	}

	// Marking touches only the events named.
	var one uuid.UUID
	if err := h.owner.QueryRow(ctx, "SELECT id FROM outbox WHERE tenant_id = $1", b).Scan(&one); err != nil {
		t.Fatal(err)
	}
	var marked int
	if err := h.db.Pool.QueryRow(ctx, "SELECT app.outbox_mark_published($1, $2, now())",
		[]uuid.UUID{b, b}, []uuid.UUID{one, published}).Scan(&marked); err != nil {
		t.Fatal(err)
	}
	if marked != 1 {
		t.Errorf("marked %d events, want 1 (the other pair is not an event of b)", marked)
	}
	if n := h.count("SELECT count(*) FROM outbox WHERE published_at IS NULL"); n != 2 {
		t.Errorf("%d unpublished events left, want 2", n)
	}

	// Only the runtime role (and the owner) may execute them.
	var public []string
	rows, _ := h.owner.Query(ctx, `
		SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		 WHERE n.nspname = 'app' AND p.proname IN ('outbox_unpublished', 'outbox_mark_published',
		       'outbox_oldest_unpublished', 'event_retries_due', 'claim_webhook_deliveries', 'reap_events')
		   AND (p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0))`)
	if public, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(public) > 0 {
		t.Errorf("functions executable by PUBLIC: %v", public)
	}
}

// Test 1: the relay dies between publishing a batch and marking it. The batch is published
// again, and every consumer applies each event once.
func TestRelayFaultBetweenPublishAndMark(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			c1, c2 := name("fault-"+tr.name), name("fault-"+tr.name)
			cs := h.consumers(effectConsumer(c1), effectConsumer(c2))
			transport := tr.new(t, cs)
			startConsumers(t, cs, transport)
			relay := h.relay(transport)
			var faulted atomic.Int32 // the size of the batch the fault hit
			events.SetAfterPublish(relay, func(evs []events.Event) error {
				if faulted.CompareAndSwap(0, int32(len(evs))) {
					return errors.New("killed between publish and mark")
				}
				return nil
			})
			a, b := uuid.New(), uuid.New()
			h.appendEvents(a, "test.fault", 0, 3, 3)
			h.appendEvents(b, "test.fault", 0, 2, 1)

			waitFor(t, 20*time.Second, "the fault", func() bool {
				n, err := relay.RunOnce(ctx)
				if err != nil && faulted.Load() > 0 {
					return true
				}
				if err != nil || n > 0 {
					t.Fatalf("RunOnce = %d, %v; want the fault", n, err)
				}
				return false
			})
			if n := h.count("SELECT count(*) FROM outbox WHERE type = 'test.fault' AND published_at IS NULL"); n != 5 {
				t.Fatalf("%d events unpublished after the fault, want all 5", n)
			}
			waitFor(t, 20*time.Second, "every event published", func() bool {
				if _, err := relay.RunOnce(ctx); err != nil {
					t.Fatal(err)
				}
				return h.count("SELECT count(*) FROM outbox WHERE type = 'test.fault' AND published_at IS NULL") == 0
			})
			again := float64(faulted.Load())
			for _, c := range []string{c1, c2} {
				waitFor(t, 20*time.Second, c+" to see the faulted batch twice", func() bool {
					return h.counter("events_consumed_total", map[string]string{"consumer": c, "outcome": "applied"}) == 5 &&
						h.counter("events_consumed_total", map[string]string{"consumer": c, "outcome": "duplicate"}) == again
				})
				h.checkEffects(c, 5)
			}
		})
	}
}

// Test 3: two relays at once, while events are written: none is lost, none applied twice,
// each tenant's in order.
func TestTwoRelays(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := newHarness(t)
			consumer := name("tworelays-" + tr.name)
			cs := h.consumers(effectConsumer(consumer))
			transport := tr.new(t, cs)
			startConsumers(t, cs, transport)
			var perRelay [2]atomic.Int64
			for i := range perRelay {
				relay := h.relay(countingTransport{transport, &perRelay[i]})
				relay.BatchSize = 25
				run(t, relay.Run)
			}

			const tenants, each = 10, 60
			var wg sync.WaitGroup
			for range tenants {
				tenant := uuid.New()
				wg.Go(func() { h.appendEvents(tenant, "test.two", 0, each, 3) })
			}
			wg.Wait()
			waitFor(t, 30*time.Second, "every event applied", func() bool {
				return h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", consumer) >= tenants*each
			})
			h.checkEffects(consumer, tenants*each)
			t.Logf("published by each relay: %d, %d", perRelay[0].Load(), perRelay[1].Load())
		})
	}
}

// countingTransport counts what goes through a transport.
type countingTransport struct {
	events.Transport
	n *atomic.Int64
}

func (c countingTransport) Publish(ctx context.Context, evs []events.Event) error {
	err := c.Transport.Publish(ctx, evs)
	if err == nil {
		c.n.Add(int64(len(evs)))
	}
	return err
}
