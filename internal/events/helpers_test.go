package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The tests of this package share one database and its outbox, so they run one at a time
// and each starts with the outbox drained.

// harness is a test's database, metrics and logger.
type harness struct {
	t       testing.TB
	db      *postgres.DB
	owner   *pgx.Conn
	reg     *prometheus.Registry
	metrics *events.Metrics
	logger  *slog.Logger
	outbox  *events.Outbox
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	db, err := postgres.Open(context.Background(), pgtest.RuntimeURL(t), postgres.Options{MaxConns: 24})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	h := &harness{
		t: t, db: db, owner: pgtest.Owner(t), reg: prometheus.NewRegistry(),
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		outbox: &events.Outbox{Clock: clock.System{}},
	}
	h.metrics = events.NewMetrics(h.reg)
	h.exec(`
		DO $$ BEGIN
		    IF to_regclass('public.test_effects') IS NULL THEN
		        CREATE TABLE test_effects (
		            tenant_id uuid NOT NULL,
		            consumer  text NOT NULL,
		            event_id  uuid NOT NULL,
		            seq       int NOT NULL,
		            n         bigint GENERATED ALWAYS AS IDENTITY
		        );
		        ALTER TABLE test_effects ENABLE ROW LEVEL SECURITY;
		        ALTER TABLE test_effects FORCE ROW LEVEL SECURITY;
		        CREATE POLICY tenant_isolation ON test_effects
		            USING (tenant_id = app.current_tenant_id()) WITH CHECK (tenant_id = app.current_tenant_id());
		        GRANT SELECT, INSERT, UPDATE, DELETE ON test_effects TO app_runtime;
		    END IF;
		END $$`)
	h.exec("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
	return h
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.owner.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	return countRows(h.t, h.owner, sql, args...)
}

// countRows answers the number that query, a SELECT count(*), reads on conn.
func countRows(t testing.TB, conn *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// name makes a consumer name of base unique to this run, so that repeated runs (-count) in
// the same database do not see each other's inbox and effects.
func name(base string) string { return base + "-" + uuid.NewString()[:8] }

// consumers builds a consumer set with a quick retry policy.
func (h *harness) consumers(cs ...events.Consumer) *events.Consumers {
	set := &events.Consumers{
		DB: h.db, Clock: clock.System{}, Metrics: h.metrics, Logger: h.logger,
		Retry: events.RetryPolicy{Attempts: 4, Base: 10 * time.Millisecond, Max: 40 * time.Millisecond},
	}
	for _, c := range cs {
		set.Add(c)
	}
	return set
}

func (h *harness) relay(t events.Transport) *events.Relay {
	return &events.Relay{DB: h.db, Transport: t, Clock: clock.System{}, Metrics: h.metrics, Logger: h.logger,
		Interval: 10 * time.Millisecond}
}

// seqData is the payload of the test events: their place in their tenant's stream.
type seqData struct {
	Seq int `json:"seq"`
}

// appendEvents appends n events of typ for tenant, perTx to a transaction, numbered from first.
func (h *harness) appendEvents(tenant uuid.UUID, typ string, first, n, perTx int) {
	h.t.Helper()
	ctx := context.Background()
	for i := first; i < first+n; i += perTx {
		err := h.db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
			for j := i; j < min(i+perTx, first+n); j++ {
				if err := h.outbox.Append(ctx, tx, tenant, typ, seqData{Seq: j}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			h.t.Error(err)
			return
		}
	}
}

// effectConsumer records each event it applies in test_effects, in the event's transaction.
func effectConsumer(name string) events.Consumer {
	return events.Consumer{Name: name, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
		return recordEffect(ctx, tx, name, e)
	}}
}

func recordEffect(ctx context.Context, tx pgx.Tx, consumer string, e events.Event) error {
	args, err := effectArgs(consumer, e)
	if err == nil {
		_, err = tx.Exec(ctx, insertEffect, args...)
	}
	return err
}

// insertEffect records that a consumer applied an event; effectArgs answers its arguments.
const insertEffect = "INSERT INTO test_effects (tenant_id, consumer, event_id, seq) VALUES ($1, $2, $3, $4)"

func effectArgs(consumer string, e events.Event) ([]any, error) {
	var d seqData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return nil, err
	}
	return []any{e.Tenant(), consumer, e.ID, d.Seq}, nil
}

// checkEffects checks that consumer applied each of want's events once, and each tenant's in
// the order of seq.
func (h *harness) checkEffects(consumer string, want int) {
	h.t.Helper()
	rows, err := h.owner.Query(context.Background(),
		"SELECT tenant_id, event_id, seq FROM test_effects WHERE consumer = $1 ORDER BY n", consumer)
	if err != nil {
		h.t.Fatal(err)
	}
	seen := map[uuid.UUID]bool{}
	last := map[uuid.UUID]int{}
	total := 0
	for rows.Next() {
		var tenant, id uuid.UUID
		var seq int
		if err := rows.Scan(&tenant, &id, &seq); err != nil {
			h.t.Fatal(err)
		}
		total++
		if seen[id] {
			h.t.Errorf("%s: event %s applied twice", consumer, id)
		}
		seen[id] = true
		if prev, ok := last[tenant]; ok && seq <= prev {
			h.t.Errorf("%s: tenant %s: event %d applied after %d", consumer, tenant, seq, prev)
		}
		last[tenant] = seq
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	if total != want {
		h.t.Errorf("%s applied %d events, want %d", consumer, total, want)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counter reads a counter of the harness's registry (0 if it has not been touched).
func (h *harness) counter(name string, labels map[string]string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// transports are the two transports every end-to-end test runs on.
var transports = []struct {
	name string
	new  func(t testing.TB, cs *events.Consumers) events.Transport
}{
	{"inprocess", func(t testing.TB, cs *events.Consumers) events.Transport {
		return events.NewInProcess(8, cs.Names()...)
	}},
	{"kafka", func(t testing.TB, cs *events.Consumers) events.Transport { return newKafka(t) }},
}

// newKafka starts an in-process Kafka cluster (kfake: the real protocol) and a transport on it.
func newKafka(t testing.TB) *events.Kafka {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(12, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	k, err := events.NewKafka(events.KafkaConfig{
		Brokers: cluster.ListenAddrs(), Topic: "events", GroupPrefix: fmt.Sprintf("test-%s.", uuid.NewString()[:8]),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// run starts fn in the background and stops it when the test ends.
func run(t testing.TB, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fn(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// startConsumers runs cs on tr, and their retrier, until the test ends.
func startConsumers(t testing.TB, cs *events.Consumers, tr events.Transport) {
	run(t, func(ctx context.Context) {
		if err := cs.Run(ctx, tr); err != nil {
			t.Errorf("consumers: %v", err)
		}
	})
	run(t, func(ctx context.Context) {
		for ctx.Err() == nil {
			if _, err := cs.RetryDue(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("retry: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
}
