package invoicing_test

import (
	"context"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// benchTenants is the scale of the closer's benchmarks: the 10k tenants.
const benchTenants = 10_000

// BenchmarkClose measures the billing period closer at 10k tenants: a run with nothing due
// (every tenant inside its current period), and a run that finalizes 10k ended periods, one
// per tenant. The tenants and their first periods are seeded in two statements, in a second
// or two. Each due iteration moves the clock a month on, so that every tenant has exactly
// one period due again.
func BenchmarkClose(b *testing.B) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFixed(t0.Add(10 * 24 * time.Hour))
	s := servertest.NewAt(b, clk)
	owner := pgtest.Owner(b)
	if _, err := owner.Exec(ctx, `
		INSERT INTO tenants (id, name, slug, plan_code, created_at)
		SELECT gen_random_uuid(), 'bench', 'close-bench-' || i, 'free', $1 FROM generate_series(1, $2) i`, t0, benchTenants); err != nil {
		b.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `
		INSERT INTO billing_periods (tenant_id, period_start, period_end, timezone, created_at)
		SELECT id, $1::timestamptz, $1::timestamptz + interval '1 month', 'UTC', $1::timestamptz FROM tenants WHERE slug LIKE 'close-bench-%'`, t0); err != nil {
		b.Fatal(err)
	}
	if _, err := s.App.Invoices.Close(ctx); err != nil { // a first run stores whatever is missing
		b.Fatal(err)
	}

	b.Run("noop-10k-tenants", func(b *testing.B) {
		for b.Loop() {
			n, err := s.App.Invoices.Close(ctx)
			if err != nil || n != 0 {
				b.Fatalf("Close = %d, %v; want nothing to do", n, err)
			}
		}
	})
	month := 0
	b.Run("due-10k-invoices", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			month++
			clk.Advance(t0.AddDate(0, month, 0).Add(s.App.Invoices.Grace + time.Hour).Sub(clk.Now()))
			b.StartTimer()
			n, err := s.App.Invoices.Close(ctx)
			if err != nil || n != benchTenants {
				b.Fatalf("Close = %d, %v; want %d invoices", n, err, benchTenants)
			}
		}
	})
}
