package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/events/webhook"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testKey seals the endpoints' secrets in tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// fixture is a database with the webhook services on it. The tests of this package share the
// outbox, so they run one at a time.
type fixture struct {
	t         testing.TB
	db        *postgres.DB
	owner     *pgx.Conn
	clock     *clock.Fixed
	outbox    *events.Outbox
	endpoints *webhook.Endpoints
	deliverer *webhook.Deliverer
	reg       *prometheus.Registry
	relay     *events.Relay
}

// newFixture builds the services; clientAllowsPrivate is the deliverer's
// WEBHOOKS_ALLOW_PRIVATE_NETWORKS (endpoints may always be created on loopback here, so that
// the deliverer's own check can be tested).
func newFixture(t testing.TB, clientAllowsPrivate bool) *fixture {
	t.Helper()
	db := pgtest.DB(t)
	box, err := secretbox.New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, owner: pgtest.Owner(t), clock: clock.NewFixed(time.Now().UTC()), reg: prometheus.NewRegistry()}
	f.outbox = &events.Outbox{Clock: f.clock}
	f.endpoints = &webhook.Endpoints{DB: db, Outbox: f.outbox, Clock: f.clock, Secrets: box, AllowPrivate: true}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.deliverer = &webhook.Deliverer{
		DB: db, Clock: f.clock, Secrets: box, Client: webhook.NewClient(clientAllowsPrivate, 2*time.Second),
		Outbox: f.outbox, Metrics: webhook.NewMetrics(f.reg), Logger: logger,
		Schedule: []time.Duration{time.Minute, time.Minute}, DisableAfter: time.Hour,
	}

	// What earlier tests left behind stays out of this one's way.
	for _, sql := range []string{
		"UPDATE outbox SET published_at = now() WHERE published_at IS NULL",
		"UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'pending'",
	} {
		if _, err := f.owner.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}

	// The fan-out runs as a consumer of the tenant's events, on the in-process transport.
	cs := &events.Consumers{DB: db, Clock: f.clock, Logger: logger}
	cs.Add(f.endpoints.Consumer())
	tr := events.NewInProcess(2, cs.Names()...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { cs.Run(ctx, tr) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	f.relay = &events.Relay{DB: db, Transport: tr, Clock: f.clock, Logger: logger}
	return f
}

// newTenant creates a tenant.
func (f *fixture) newTenant() uuid.UUID {
	f.t.Helper()
	id := uuid.Must(uuid.NewV7())
	err := f.db.InTenantTx(context.Background(), id, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, 'w', $2, 'free')",
			id, "w-"+id.String()[24:])
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// emit writes an event of tenant and relays the outbox until it is published, so that the
// fan-out has recorded its deliveries.
func (f *fixture) emit(tenant uuid.UUID, typ string, data any) uuid.UUID {
	f.t.Helper()
	ctx := context.Background()
	err := f.db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error { return f.outbox.Append(ctx, tx, tenant, typ, data) })
	if err != nil {
		f.t.Fatal(err)
	}
	var id uuid.UUID
	if err := f.owner.QueryRow(ctx, "SELECT id FROM outbox WHERE tenant_id = $1 AND type = $2 ORDER BY id DESC LIMIT 1", tenant, typ).Scan(&id); err != nil {
		f.t.Fatal(err)
	}
	f.relayAll()
	return id
}

func (f *fixture) relayAll() {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := f.relay.RunOnce(context.Background()); err != nil {
			f.t.Fatal(err)
		}
		var n int
		if err := f.owner.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE published_at IS NULL").Scan(&n); err != nil {
			f.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatal("the outbox was not relayed in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deliverDue runs the deliverer once and answers how many deliveries it sent.
func (f *fixture) deliverDue() int {
	f.t.Helper()
	n, err := f.deliverer.RunOnce(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.owner.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// receiver is a webhook receiver answering the statuses it is given in turn (200 after).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	header   http.Header // set on every answer but a 2xx
	got      []received
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body})
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		if status/100 != 2 {
			maps.Copy(w.Header(), r.header)
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// fanOut writes an event of tenant and fans it out to the tenant's endpoints in the same
// transaction, as the fan-out consumer would after the relay. The event is stored as
// published, so the relay leaves it alone (and if it did not, the fan-out would add
// nothing: one delivery per endpoint and event). It keeps tests that measure the deliverer
// free of the relay's pace, which on a shared PostgreSQL server waits for every other
// transaction of the server (its snapshot horizon).
func (f *fixture) fanOut(tenant uuid.UUID, typ string, data any) uuid.UUID {
	f.t.Helper()
	ctx := context.Background()
	body, err := json.Marshal(data)
	if err != nil {
		f.t.Fatal(err)
	}
	e := events.Event{ID: uuid.Must(uuid.NewV7()), Type: typ, TenantID: &tenant, OccurredAt: f.clock.Now(), Data: body}
	err = f.db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO outbox (tenant_id, id, type, occurred_at, data, published_at) VALUES ($1, $2, $3, $4, $5, $4)",
			tenant, e.ID, e.Type, e.OccurredAt, e.Data); err != nil {
			return err
		}
		return f.endpoints.Consumer().Handle(ctx, tx, e)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return e.ID
}
