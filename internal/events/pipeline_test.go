package events_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Test 2: 10,000 events from 50 tenants, written while the relay runs: all arrive, each
// tenant's in order, each applied once.
func TestTenThousandEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 events")
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := newHarness(t)
			consumer := name("tenk-" + tr.name)
			cs := h.consumers(effectConsumer(consumer))
			transport := tr.new(t, cs)
			startConsumers(t, cs, transport)
			run(t, h.relay(transport).Run)

			const tenants, each = 50, 200
			start := time.Now()
			var wg sync.WaitGroup
			for range tenants {
				tenant := uuid.New()
				wg.Go(func() { h.appendEvents(tenant, "test.tenk", 0, each, 20) })
			}
			wg.Wait()
			waitFor(t, 60*time.Second, "10,000 events applied", func() bool {
				return h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", consumer) >= tenants*each
			})
			t.Logf("%s: %d events written and applied in %s", tr.name, tenants*each, time.Since(start).Round(time.Millisecond))
			h.checkEffects(consumer, tenants*each)
		})
	}
}

// On Kafka, a record is keyed by its tenant and carries the tenant, event id and type in
// headers; its value is the envelope, with tenant_id null for a platform event.
func TestKafkaRecords(t *testing.T) {
	ctx := context.Background()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	k, err := events.NewKafka(events.KafkaConfig{Brokers: cluster.ListenAddrs(), Topic: "records", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	tenant := uuid.New()
	evs := []events.Event{
		{ID: uuid.New(), Type: "project.created", TenantID: &tenant, OccurredAt: time.Now().UTC(), Data: json.RawMessage(`{"a":1}`)},
		{ID: uuid.New(), Type: "plan.changed", OccurredAt: time.Now().UTC(), Data: json.RawMessage(`{"b":2}`)},
	}
	if err := k.Publish(ctx, evs); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("records"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(recs) < 2 && pctx.Err() == nil {
		recs = append(recs, cl.PollFetches(pctx).Records()...)
	}
	if len(recs) != 2 {
		t.Fatalf("read %d records, want 2", len(recs))
	}
	for _, r := range recs {
		headers := map[string]string{}
		for _, h := range r.Headers {
			headers[h.Key] = string(h.Value)
		}
		var got struct {
			ID       uuid.UUID  `json:"id"`
			Type     string     `json:"type"`
			TenantID *uuid.UUID `json:"tenant_id"`
		}
		if err := json.Unmarshal(r.Value, &got); err != nil {
			t.Fatal(err)
		}
		if headers[events.HeaderEventID] != got.ID.String() || headers[events.HeaderEventType] != got.Type {
			t.Errorf("headers %v do not name event %s (%s)", headers, got.ID, got.Type)
		}
		switch got.Type {
		case "project.created":
			if string(r.Key) != tenant.String() || headers[events.HeaderTenantID] != tenant.String() ||
				got.TenantID == nil || *got.TenantID != tenant {
				t.Errorf("tenant record: key %q, headers %v, tenant_id %v; want the tenant %s", r.Key, headers, got.TenantID, tenant)
			}
		case "plan.changed":
			if string(r.Key) != postgres.PlatformTenant.String() || got.TenantID != nil {
				t.Errorf("platform record: key %q, tenant_id %v; want the all-zero key and null", r.Key, got.TenantID)
			}
			if _, ok := headers[events.HeaderTenantID]; ok {
				t.Errorf("platform record has a %s header", events.HeaderTenantID)
			}
		}
	}
}

// Test 6: a consumer runs in the transaction of its event's tenant. Handling tenant B's
// event, it cannot read or write tenant A's rows. And platform events reach platform
// consumers only, tenants' events tenant consumers only.
func TestConsumerIsolation(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	a, b := uuid.New(), uuid.New()
	err := h.db.InTenantTx(ctx, a, func(tx pgx.Tx) error {
		return recordEffect(ctx, tx, "isolation-seed", events.Event{ID: uuid.New(), TenantID: &a, Data: json.RawMessage(`{"seq":1}`)})
	})
	if err != nil {
		t.Fatal(err)
	}

	type seen struct {
		visible   int
		updated   int64
		insertErr error
	}
	results := make(chan seen, 1)
	tenantWatcher, platformWatcher := name("isolation-tenant"), name("isolation-platform")
	snoop := events.Consumer{Name: name("isolation-snoop"), Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
		var s seen
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM test_effects WHERE tenant_id = $1", a).Scan(&s.visible); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE test_effects SET seq = -1 WHERE tenant_id = $1", a)
		if err != nil {
			return err
		}
		s.updated = tag.RowsAffected()
		// The write fails, and the savepoint keeps the failure from aborting the transaction.
		sub, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		_, s.insertErr = sub.Exec(ctx, "INSERT INTO test_effects (tenant_id, consumer, event_id, seq) VALUES ($1, 'snoop', $2, 0)", a, e.ID)
		sub.Rollback(ctx)
		results <- s
		return nil
	}}
	var mu sync.Mutex
	got := map[string][]string{}
	watcher := func(consumer string, platform bool) events.Consumer {
		return events.Consumer{Name: consumer, Platform: platform, Handle: func(_ context.Context, _ pgx.Tx, e events.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got[consumer] = append(got[consumer], e.Type)
			return nil
		}}
	}
	cs := h.consumers(snoop, watcher(tenantWatcher, false), watcher(platformWatcher, true))
	tr := events.NewInProcess(4, cs.Names()...)
	startConsumers(t, cs, tr)

	h.appendEvents(b, "test.tenant", 0, 1, 1)
	err = h.db.InTenantTx(ctx, postgres.PlatformTenant, func(tx pgx.Tx) error {
		return h.outbox.Append(ctx, tx, postgres.PlatformTenant, "test.platform", seqData{})
	})
	if err != nil {
		t.Fatal(err)
	}
	relay := h.relay(tr)
	waitFor(t, 20*time.Second, "both events relayed", func() bool {
		if _, err := relay.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return h.count("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
	})

	s := <-results
	if s.visible != 0 || s.updated != 0 {
		t.Errorf("B's consumer saw %d and updated %d of A's rows, want 0 and 0", s.visible, s.updated)
	}
	if s.insertErr == nil {
		t.Error("B's consumer wrote a row of A")
	}
	if n := h.count("SELECT count(*) FROM test_effects WHERE tenant_id = $1 AND seq = 1", a); n != 1 {
		t.Errorf("A's row changed: %d rows left as they were, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if g := got[tenantWatcher]; len(g) != 1 || g[0] != "test.tenant" {
		t.Errorf("tenant consumer saw %v, want only test.tenant", g)
	}
	if g := got[platformWatcher]; len(g) != 1 || g[0] != "test.platform" {
		t.Errorf("platform consumer saw %v, want only test.platform", g)
	}
	if n := h.count("SELECT count(*) FROM event_inbox WHERE consumer = $1 AND tenant_id = $2", tenantWatcher, postgres.PlatformTenant); n != 0 {
		t.Errorf("the tenant consumer took in %d platform events", n)
	}
}

// A consumer's Handle gets the transaction as the context's unit of work, so services that
// open their own InTenantTx join it and commit with the inbox row.
func TestConsumerUnitOfWork(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	consumer := name("unit-of-work")
	var failed atomic.Bool
	c := events.Consumer{Name: consumer, Handle: func(ctx context.Context, _ pgx.Tx, e events.Event) error {
		err := h.db.InTenantTx(ctx, e.Tenant(), func(tx pgx.Tx) error { return recordEffect(ctx, tx, consumer, e) })
		if err != nil {
			return err
		}
		if failed.CompareAndSwap(false, true) {
			return errorString("fails after its write: the write must be undone")
		}
		return nil
	}}
	cs := h.consumers(c)
	tr := events.NewInProcess(1, cs.Names()...)
	startConsumers(t, cs, tr)
	h.appendEvents(uuid.New(), "test.uow", 0, 1, 1)
	relay := &events.Relay{DB: h.db, Transport: tr, Clock: clock.System{}}
	waitFor(t, 20*time.Second, "the event applied on its retry", func() bool {
		if _, err := relay.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return h.count("SELECT count(*) FROM event_retries WHERE consumer = $1", consumer) == 0 &&
			h.count("SELECT count(*) FROM event_inbox WHERE consumer = $1", consumer) == 1
	})
	h.checkEffects(consumer, 1)
}

// A handler may queue its writes for the commit (postgres.Later), which then go out with the
// run's COMMIT. When one of them fails, the run commits nothing and goes one event at a time:
// the events before take effect, the one whose statement failed is parked with that error,
// and the tenant's events after it wait behind it; the relay is not held up.
func TestHandlerStatementsForTheCommit(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	consumer := name("later")
	c := events.Consumer{Name: consumer, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
		args, err := effectArgs(consumer, e)
		switch {
		case err != nil:
			return err
		case args[3] == 1: // the event of seq 1
			return postgres.Later(ctx, tx, "SELECT 1/0")
		}
		return postgres.Later(ctx, tx, insertEffect, args...)
	}}
	cs := h.consumers(c)
	tr := events.NewInProcess(1, cs.Names()...)
	startConsumers(t, cs, tr)
	tenant := uuid.New()
	h.appendEvents(tenant, "test.later", 0, 3, 3) // one transaction: one run
	relay := h.relay(tr)
	if n, err := relay.RunOnce(ctx); err != nil || n != 3 {
		t.Fatalf("relayed %d events (%v), want 3 in one round", n, err)
	}
	if n := h.count("SELECT count(*) FROM outbox WHERE tenant_id = $1 AND published_at IS NULL", tenant); n != 0 {
		t.Errorf("%d events left unpublished", n)
	}
	if n := h.count("SELECT count(*) FROM test_effects WHERE consumer = $1 AND seq = 0", consumer); n != 1 {
		t.Errorf("the event before the failure took effect %d times, want once", n)
	}
	if n := h.count("SELECT count(*) FROM test_effects WHERE consumer = $1 AND seq > 0", consumer); n != 0 {
		t.Errorf("%d effects of the failed event or of the one behind it", n)
	}
	if n := h.count(`SELECT count(*) FROM event_retries r JOIN outbox o ON o.id = r.event_id
	                  WHERE r.consumer = $1 AND (o.data->>'seq')::int = 1 AND r.last_error LIKE '%division by zero%'`, consumer); n != 1 {
		t.Errorf("the failed event is parked with its statement's error %d times, want once", n)
	}
	if n := h.count("SELECT count(*) FROM event_retries WHERE consumer = $1", consumer); n != 2 {
		t.Errorf("%d events parked, want 2: the failed one and the one behind it", n)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// A tenant's events delivered together are applied in one transaction with their inbox rows.
// If the consumer dies in the middle of such a run (its process stops while a handler runs),
// nothing of the run commits: delivered again, each event takes effect once, in order, and
// none of the events applied before the crash in that run is applied twice.
func TestCrashMidRun(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			consumer := name("crash-" + tr.name)
			crashed := make(chan struct{})
			var crashing atomic.Bool
			crashing.Store(true)
			c := events.Consumer{Name: consumer, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
				if err := recordEffect(ctx, tx, consumer, e); err != nil {
					return err
				}
				var d seqData
				if err := json.Unmarshal(e.Data, &d); err != nil {
					return err
				}
				if d.Seq == 5 && crashing.Load() {
					close(crashed)
					<-ctx.Done() // the process is stopping: the handler never returns normally
					return ctx.Err()
				}
				return nil
			}}
			cs := h.consumers(c)
			transport := tr.new(t, cs)
			tenant := uuid.New()
			h.appendEvents(tenant, "test.crash", 0, 10, 10) // one transaction: one run

			// The first life: the relay publishes, the consumer dies at the sixth event.
			life, die := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() {
				if err := cs.Run(life, transport); err != nil {
					t.Errorf("consumers: %v", err)
				}
			})
			relay := h.relay(transport)
			wg.Go(func() {
				for life.Err() == nil {
					relay.RunOnce(life) // in-process: blocks until the consumer dies
					select {
					case <-life.Done():
					case <-time.After(10 * time.Millisecond):
					}
				}
			})
			select {
			case <-crashed:
			case <-time.After(30 * time.Second):
				t.Fatal("the consumer never reached the sixth event")
			}
			die()
			wg.Wait()
			if n := h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", consumer); n != 0 {
				t.Fatalf("%d effects committed by the run that crashed, want 0", n)
			}

			// The second life: the same consumer again, on a fresh start.
			crashing.Store(false)
			again := h.consumers(c)
			if tr.name == "inprocess" {
				transport = events.NewInProcess(8, again.Names()...)
			}
			startConsumers(t, again, transport)
			run(t, h.relay(transport).Run)
			h.waitApplied(consumer, 10)
			h.checkEffects(consumer, 10)
			if n := h.count("SELECT count(*) FROM event_inbox WHERE consumer = $1", consumer); n != 10 {
				t.Errorf("%d inbox rows, want 10", n)
			}
		})
	}
}
