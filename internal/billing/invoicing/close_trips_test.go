package invoicing_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/saasbase/saasbase/internal/billing/invoicing"
	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
	"github.com/saasbase/saasbase/internal/tenant"
)

// maxTripsPerTenant bounds the closer's round trips per tenant with a period due and one to
// store: two (closeOnce), and the run's few more (a query per chunk, a read per plan). It was
// 14 when each step took its own (and each statement of a step, many of them).
const maxTripsPerTenant = 3

// billingInfo answers invoicing's questions about tenants as the service does.
type billingInfo struct{ dir *tenant.Directory }

func (b billingInfo) BillingInfo(ctx context.Context, id uuid.UUID) (invoicing.TenantInfo, error) {
	t, err := b.dir.Get(ctx, id)
	return invoicing.TenantInfo{ID: t.ID, Plan: t.Plan, Timezone: t.Timezone, CreatedAt: t.CreatedAt}, err
}

// tracedInvoices builds the service's closer on a pool of its own whose statements tracer
// sees.
func tracedInvoices(t *testing.T, clk clock.Clock, grace time.Duration, tracer pgx.QueryTracer) *invoicing.Invoices {
	t.Helper()
	db, err := postgres.Open(context.Background(), pgtest.RuntimeURL(t), postgres.Options{Tracer: tracer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	outbox := &events.Outbox{Clock: clk}
	meters := metering.NewMeters(db, outbox, clk)
	periods := invoicing.NewPeriods(db, billingInfo{tenant.NewDirectory(&tenant.Tenants{DB: db, Outbox: outbox}, clk, time.Second)}, clk)
	return &invoicing.Invoices{
		DB: db, Outbox: outbox, Clock: clk, Plans: &plans.Plans{DB: db, Outbox: outbox, Meters: meters},
		Usage: &metering.Usage{DB: db, Meters: meters, Periods: periods, Clock: clk}, Periods: periods,
		Grace: grace, Metrics: invoicing.NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// TestCloseRoundTripsPerTenant: finalizing a tenant's ended period and storing its next one
// costs a fixed number of round trips to PostgreSQL, whatever the plan (here one charge, on
// a meter with usage). Round trips, not wall time, are what a run at 10k tenants is made of
// (BenchmarkClose), and unlike wall time they do not depend on the machine's load.
func TestCloseRoundTripsPerTenant(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFixed(t0.AddDate(0, 1, 0).Add(48 * time.Hour))
	s := servertest.NewAt(t, clk)
	s.MeteredPlan(t)
	const tenants = 40
	ids := dueTenants(t, s, "metered", t0, tenants)
	owner := pgtest.Owner(t)
	if _, err := owner.Exec(ctx, `
		INSERT INTO usage_rollups (tenant_id, meter_key, bucket_start, group_key, value, events)
		SELECT id, 'tokens', $2::timestamptz + interval '1 day', '{}', 7, 1 FROM unnest($1::uuid[]) AS id`, ids, t0); err != nil {
		t.Fatal(err)
	}

	var trips pgtest.RoundTrips
	inv := tracedInvoices(t, clk, s.App.Invoices.Grace, &trips)
	n, err := inv.Close(ctx)
	if err != nil || n != tenants {
		t.Fatalf("Close = %d, %v; want %d invoices", n, err, tenants)
	}
	perTenant := float64(trips.N.Load()) / tenants
	t.Logf("%d round trips for %d tenants: %.2f per tenant (%.2f statements)", trips.N.Load(), tenants, perTenant, float64(trips.Statements.Load())/tenants)
	var total int64
	if err := owner.QueryRow(ctx, "SELECT sum(total) FROM invoices WHERE tenant_id = ANY($1)", ids).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != tenants*(1000+7) {
		t.Errorf("invoices total %d, want %d (10.07 usd each)", total, tenants*(1000+7))
	}
	if perTenant > maxTripsPerTenant {
		t.Errorf("%.2f round trips per tenant, want at most %d", perTenant, maxTripsPerTenant)
	}
}
