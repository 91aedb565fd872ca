package invoicing_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
// one period due again. Besides wall time, which other work on the machine makes noisy, each
// reports the CPU it cost per tenant, this process's and the test database's PostgreSQL
// backends' (Linux only).
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

	cpu := &cpuMeter{owner: owner}
	b.Run("noop-10k-tenants", func(b *testing.B) {
		defer cpu.report(b, cpu.now(b), benchTenants)
		for b.Loop() {
			n, err := s.App.Invoices.Close(ctx)
			if err != nil || n != 0 {
				b.Fatalf("Close = %d, %v; want nothing to do", n, err)
			}
		}
	})
	month := 0
	b.Run("due-10k-invoices", func(b *testing.B) {
		var spent cpuSpent
		defer func() { spent.report(b, benchTenants) }()
		for range b.N {
			b.StopTimer()
			month++
			clk.Advance(t0.AddDate(0, month, 0).Add(s.App.Invoices.Grace + time.Hour).Sub(clk.Now()))
			b.StartTimer()
			at := cpu.now(b)
			n, err := s.App.Invoices.Close(ctx)
			spent.add(cpu.since(b, at))
			if err != nil || n != benchTenants {
				b.Fatalf("Close = %d, %v; want %d invoices", n, err, benchTenants)
			}
		}
	})
}

// cpuMeter reads the CPU time spent by this process and by the test database's backends.
type cpuMeter struct{ owner *pgx.Conn }

type cpuAt struct {
	self time.Duration
	pg   map[int]time.Duration // by backend pid; nil where /proc cannot tell
}

type cpuSpent struct {
	self, pg time.Duration
	n        int
	ok       bool
}

func (m *cpuMeter) now(b *testing.B) cpuAt {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c := cpuAt{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), pg: map[int]time.Duration{}}
	rows, _ := m.owner.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return cpuAt{self: c.self}
		}
		// utime and stime are the 12th and 13th fields after the command's parenthesis.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			return cpuAt{self: c.self}
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		c.pg[int(pid)] = time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return c
}

// since answers the CPU spent since start.
func (m *cpuMeter) since(b *testing.B, start cpuAt) cpuSpent {
	end := m.now(b)
	spent := cpuSpent{self: end.self - start.self, n: 1, ok: start.pg != nil && end.pg != nil}
	for pid, t := range end.pg {
		spent.pg += t - start.pg[pid]
	}
	return spent
}

func (c *cpuSpent) add(d cpuSpent) {
	c.self, c.pg, c.n, c.ok = c.self+d.self, c.pg+d.pg, c.n+d.n, (c.n == 0 || c.ok) && d.ok
}

// report reports the CPU spent per run and tenant, in µs.
func (c cpuSpent) report(b *testing.B, tenants int) {
	if c.n == 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(c.n*tenants) }
	b.ReportMetric(per(c.self), "go-cpu-µs/tenant")
	if c.ok {
		b.ReportMetric(per(c.pg), "pg-cpu-µs/tenant")
	}
}

func (m *cpuMeter) report(b *testing.B, start cpuAt, tenants int) {
	spent := m.since(b, start)
	spent.n = b.N
	spent.report(b, tenants)
}
