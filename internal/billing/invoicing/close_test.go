package invoicing_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// dueTenants makes n tenants of plan created at t0, each with its first period, [t0, t0 + 1
// month), stored and no other, and answers their ids in the closer's order. Whatever other
// tests of the package left due at the clock's time is finalized first, so that the next
// run has only these tenants to close.
func dueTenants(t *testing.T, s *servertest.Server, plan string, t0 time.Time, n int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	for range 2 {
		if _, err := s.App.Invoices.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	owner := pgtest.Owner(t)
	prefix := "due-" + strings.ToLower(uuid.NewString()[:8]) + "-"
	rows, _ := owner.Query(ctx, `
		INSERT INTO tenants (id, name, slug, plan_code, created_at)
		SELECT gen_random_uuid(), 'due', $1 || i, $2, $3 FROM generate_series(1, $4) i
		RETURNING id`, prefix, plan, t0, n)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `
		INSERT INTO billing_periods (tenant_id, period_start, period_end, timezone, created_at)
		SELECT id, $2::timestamptz, $2::timestamptz + interval '1 month', 'UTC', $2::timestamptz FROM tenants WHERE slug LIKE $1`, prefix+"%", t0); err != nil {
		t.Fatal(err)
	}
	rows, _ = owner.Query(ctx, "SELECT id FROM tenants WHERE slug LIKE $1 ORDER BY id", prefix+"%")
	if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
		t.Fatal(err)
	}
	return ids
}

// onBatch calls fn before the first batch it sees that makes an invoice of tenant.
type onBatch struct {
	pgtest.RoundTrips
	tenant uuid.UUID
	fired  atomic.Bool
	fn     func()
}

func (o *onBatch) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	for _, q := range data.Batch.QueuedQueries {
		if strings.Contains(q.SQL, "INSERT INTO invoices") && len(q.Arguments) > 0 && q.Arguments[0] == o.tenant && o.fired.CompareAndSwap(false, true) {
			o.fn()
		}
	}
	return o.RoundTrips.TraceBatchStart(ctx, conn, data)
}

// The closer reads each plan once per run, not once per tenant, yet a plan changed during a
// run prices every period the run finalizes after the change: each tenant's transaction checks
// the version of its plan, and reads it again if it moved.
func TestAPlanChangedDuringARunPricesThePeriodsClosedAfter(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2032, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFixed(t0.AddDate(0, 1, 0).Add(48 * time.Hour))
	s := servertest.NewAt(t, clk)
	code := "midrun-" + strings.ToLower(uuid.NewString()[:8])
	plan := map[string]any{
		"name": "Mid-run", "currency": "usd", "base_fee": "5",
		"rate_limit": map[string]any{"requests_per_second": 100, "burst": 100},
	}
	s.PutPlan(t, code, plan)
	ids := dueTenants(t, s, code, t0, 2)

	owner := pgtest.Owner(t)
	hook := &onBatch{tenant: ids[0], fn: func() {
		// After the first tenant's invoice is priced, before it is stored: the operator
		// raises the base fee (as a raw change, which moves no updated_at).
		if _, err := owner.Exec(ctx, "UPDATE plans SET base_fee = 7 WHERE code = $1", code); err != nil {
			t.Error(err)
		}
	}}
	inv := tracedInvoices(t, clk, s.App.Invoices.Grace, hook)
	inv.Workers = 1 // the tenants in id order
	if n, err := inv.Close(ctx); err != nil || n != 2 {
		t.Fatalf("Close = %d, %v; want 2 invoices", n, err)
	}
	if !hook.fired.Load() {
		t.Fatal("the plan was not changed during the run")
	}
	for i, want := range []int64{500, 700} {
		var total int64
		if err := owner.QueryRow(ctx, "SELECT total FROM invoices WHERE tenant_id = $1", ids[i]).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if total != want {
			t.Errorf("tenant %d of 2: invoice of %d, want %d", i+1, total, want)
		}
	}
}

// The closer takes the close lock before the periods lock, in the order an ingestion does
// inside a unit of work (an Idempotency-Key): the close lock shared to check for finalized
// periods, then the periods lock when its quota check stores the period that has begun.
// Taken in the other order, the two would wait for each other until PostgreSQL broke the
// deadlock by failing one. Here the ingestion holds the close lock while the closer waits for
// it; the ingestion then takes the periods lock at once, and both succeed.
func TestTheCloserTakesItsLocksInIngestionsOrder(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2033, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFixed(t0.AddDate(0, 1, 0).Add(48 * time.Hour))
	s := servertest.NewAt(t, clk)
	tenantID := dueTenants(t, s, "free", t0, 1)[0] // one period due, the next to store
	owner := pgtest.Owner(t)

	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	err := s.App.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		if _, err := s.App.Invoices.Periods.FinalizedUntil(ctx, tx, tenantID); err != nil {
			return err
		}
		go func() {
			n, err := s.App.Invoices.Close(ctx)
			done <- result{n, err}
		}()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var waiting bool
			if err := owner.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory')`).Scan(&waiting); err != nil {
				return err
			}
			if waiting {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the closer never waited for the close lock")
			}
		}
		// The quota check of the same request: it stores the period that has begun.
		_, p, err := s.App.Invoices.Periods.Current(postgres.WithTx(ctx, tenantID, tx), tenantID)
		if err == nil && !p.Start.Equal(t0.AddDate(0, 1, 0)) {
			t.Errorf("current period %+v, want the one from %s", p, t0.AddDate(0, 1, 0))
		}
		return err
	})
	if err != nil {
		t.Fatalf("the ingestion's transaction: %v", err)
	}
	if r := <-done; r.err != nil || r.n != 1 {
		t.Fatalf("Close = %d, %v; want the period finalized", r.n, r.err)
	}
	var invoices, stored int
	var closeError *string
	if err := owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM invoices WHERE tenant_id = $1),
		(SELECT count(*) FROM billing_periods WHERE tenant_id = $1),
		(SELECT close_error FROM billing_periods WHERE tenant_id = $1 AND period_start = $2)`, tenantID, t0).Scan(&invoices, &stored, &closeError); err != nil {
		t.Fatal(err)
	}
	if invoices != 1 || stored != 2 || closeError != nil {
		t.Errorf("%d invoices, %d periods stored, close error %v; want 1, 2 and none", invoices, stored, closeError)
	}
}

// A tenant with no period stored yet whose first periods have ended (here two, and their grace)
// has them stored and finalized in the same run: the transaction that stores them claimed
// nothing, so took no close lock, and a second one finalizes them.
func TestPeriodsStoredDueAreClosedInTheSameRun(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2034, 3, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFixed(t0.AddDate(0, 2, 0).Add(48 * time.Hour))
	s := servertest.NewAt(t, clk)
	for range 2 {
		if _, err := s.App.Invoices.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	owner := pgtest.Owner(t)
	id := uuid.New()
	if _, err := owner.Exec(ctx, `INSERT INTO tenants (id, name, slug, plan_code, created_at) VALUES ($1, 'late', $2, 'free', $3)`,
		id, "late-"+strings.ToLower(uuid.NewString()[:8]), t0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.App.Invoices.Close(ctx); err != nil || n != 2 {
		t.Fatalf("Close = %d, %v; want the two ended periods finalized", n, err)
	}
	var invoices, stored, open int
	if err := owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM invoices WHERE tenant_id = $1),
		(SELECT count(*) FROM billing_periods WHERE tenant_id = $1),
		(SELECT count(*) FROM billing_periods WHERE tenant_id = $1 AND closed_at IS NULL)`, id).Scan(&invoices, &stored, &open); err != nil {
		t.Fatal(err)
	}
	if invoices != 2 || stored != 3 || open != 1 {
		t.Errorf("%d invoices, %d periods stored, %d not finalized; want 2, 3 and 1 (the current one)", invoices, stored, open)
	}
	if n, err := s.App.Invoices.Close(ctx); err != nil || n != 0 {
		t.Errorf("a second run finalized %d (%v), want nothing left to do", n, err)
	}
}
