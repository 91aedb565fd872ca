package invoicing_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// A tenant that moves its time zone mid-period, back and forth across the date line and to a
// zone with a 45-minute offset, is billed for every instant exactly once: the periods follow
// one another without gap or overlap, each is invoiced once, and the usage billed is the
// usage sent. (The zone a period begins in fixes its bounds; a new zone applies from the next
// period.)
func TestTimeZoneChangesBillEveryPeriodOnce(t *testing.T) {
	clk := clock.NewFixed(time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC))
	s := servertest.NewAt(t, clk)
	s.MeteredPlan(t)
	ten := s.Signup(t, "tz-hop")
	s.OnPlan(t, ten, "metered")
	zones := []string{"Etc/GMT-11", "Etc/GMT+11", "Asia/Kathmandu"}

	type sent struct {
		at time.Time
		n  int
	}
	var usage []sent
	ingest := func(id string, n int) {
		t.Helper()
		at := clk.Now().Add(-time.Minute)
		if res := s.Ingest(t, s.TokenFor(t, ten), servertest.TokensEvent(id, at, n)); res.Status != http.StatusOK {
			t.Fatalf("ingest %s: %d %s", id, res.Status, res.Body)
		}
		usage = append(usage, sent{at, n})
	}
	closePeriods := func() {
		t.Helper()
		if _, err := s.App.Invoices.Close(context.Background()); err != nil {
			t.Fatalf("closer: %v", err)
		}
	}
	for i := range 6 {
		ingest("a"+string(rune('0'+i)), 100*(i+1))
		clk.Advance(10 * 24 * time.Hour)
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/tenant", Token: s.TokenFor(t, ten),
			Body: map[string]string{"timezone": zones[i%len(zones)]}})
		if res.Status != http.StatusOK {
			t.Fatalf("PATCH timezone: %d %s", res.Status, res.Body)
		}
		ingest("b"+string(rune('0'+i)), 1)
		clk.Advance(25 * 24 * time.Hour)
		closePeriods()
	}
	clk.Advance(40 * 24 * time.Hour)
	closePeriods()
	closePeriods() // a second run finds nothing more to do

	invs := invoices(t, s, s.TokenFor(t, ten))
	if len(invs) < 6 {
		t.Fatalf("%d invoices after more than six periods", len(invs))
	}
	// Newest first: walk them oldest first.
	for i, j := 0, len(invs)-1; i < j; i, j = i+1, j-1 {
		invs[i], invs[j] = invs[j], invs[i]
	}
	if first := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC); !invs[0].PeriodStart.Equal(first) {
		t.Errorf("the first period starts at %s, want %s (the tenant's first day, in UTC)", invs[0].PeriodStart, first)
	}
	billed := 0
	for i, inv := range invs {
		if i > 0 && !inv.PeriodStart.Equal(invs[i-1].PeriodEnd) {
			t.Errorf("invoice %d covers [%s, %s), the one before ended at %s: a gap or an overlap", i, inv.PeriodStart, inv.PeriodEnd, invs[i-1].PeriodEnd)
		}
		want := 1000 // the base fee, 10 usd, once per period
		for _, u := range usage {
			if !u.at.Before(inv.PeriodStart) && u.at.Before(inv.PeriodEnd) {
				want += u.n // 0.01 usd a token
			}
		}
		if inv.Total != int64(want) {
			t.Errorf("invoice [%s, %s): total %d, want %d", inv.PeriodStart, inv.PeriodEnd, inv.Total, want)
		}
		billed += int(inv.Total) - 1000
	}
	total := 0
	for _, u := range usage {
		total += u.n
	}
	if billed != total {
		t.Errorf("billed %d tokens, sent %d", billed, total)
	}
	// Every period that ended more than the grace period ago is invoiced: the upcoming one
	// starts where the last invoice ends.
	up := upcoming(t, s, s.TokenFor(t, ten))
	if last := invs[len(invs)-1]; !up.PeriodStart.Equal(last.PeriodEnd) {
		t.Errorf("upcoming period starts at %s, the last invoice ends at %s", up.PeriodStart, last.PeriodEnd)
	}
}

// A period the closer cannot finalize (here its plan's charge was corrupted in the database)
// is never skipped in silence: the failure is counted, the period is listed for the operator
// with its error and attempts, each run tries it again, and once the cause is fixed it is
// invoiced and leaves the list.
func TestAPeriodThatCannotCloseIsRetriedAndShown(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFixed(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	s := servertest.NewAt(t, clk)
	s.MeteredPlan(t)
	code := "breaks-" + strings.ToLower(uuid.NewString()[:8])
	plan := map[string]any{
		"name": "Breaks", "currency": "usd", "base_fee": "5",
		"rate_limit": map[string]any{"requests_per_second": 100, "burst": 100},
		"charges":    []any{map[string]any{"meter": "tokens", "model": "standard", "unit_price": "0.01"}},
	}
	s.PutPlan(t, code, plan)
	ten := s.Signup(t, "breaks")
	s.OnPlan(t, ten, code)
	owner := pgtest.Owner(t)
	if _, err := owner.Exec(ctx, `UPDATE plans SET charges = '[{"meter": "tokens", "model": "bogus"}]' WHERE code = $1`, code); err != nil {
		t.Fatal(err)
	}

	type failing struct {
		TenantID    string    `json:"tenant_id"`
		PeriodStart time.Time `json:"period_start"`
		Attempts    int       `json:"attempts"`
		LastError   string    `json:"last_error"`
	}
	failingOf := func() *failing {
		t.Helper()
		var list struct{ Data []failing }
		res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/admin/billing/failing-periods", Token: s.PlatformToken(t)})
		if res.Status != http.StatusOK {
			t.Fatalf("failing periods: %d %s", res.Status, res.Body)
		}
		res.Decode(t, &list)
		for _, f := range list.Data {
			if f.TenantID == ten.ID {
				return &f
			}
		}
		return nil
	}
	failures := func() float64 {
		t.Helper()
		res := s.Do(t, servertest.Request{Method: "GET", Path: "/metrics"})
		for line := range strings.SplitSeq(string(res.Body), "\n") {
			if v, ok := strings.CutPrefix(line, "billing_period_close_failures_total "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
		t.Fatalf("no billing_period_close_failures_total in /metrics")
		return 0
	}

	clk.Advance(32 * 24 * time.Hour) // the period [03-10, 04-10) and its grace are over
	before := failures()
	for attempt := 1; attempt <= 2; attempt++ {
		if _, err := s.App.Invoices.Close(ctx); err != nil {
			t.Fatal(err)
		}
		f := failingOf()
		if f == nil || !f.PeriodStart.Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) || f.Attempts != attempt || f.LastError == "" {
			t.Fatalf("after run %d the operator sees %+v, want the period of 03-10 failing %d times, with its error", attempt, f, attempt)
		}
	}
	if got := failures() - before; got < 2 {
		t.Errorf("billing_period_close_failures_total grew by %v over two failed runs", got)
	}
	if invs := invoices(t, s, s.TokenFor(t, ten)); len(invs) != 0 {
		t.Fatalf("invoices of a period that cannot be priced: %+v", invs)
	}

	s.PutPlan(t, code, plan) // the operator fixes the plan
	if _, err := s.App.Invoices.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if f := failingOf(); f != nil {
		t.Errorf("still failing after the fix: %+v", f)
	}
	invs := invoices(t, s, s.TokenFor(t, ten))
	if len(invs) != 1 || !invs[0].PeriodStart.Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) || invs[0].Total != 500 {
		t.Fatalf("invoices after the fix: %+v, want the period of 03-10 at 5.00 usd", invs)
	}
}

// Two closers running at once, as on two replicas, finalize each due period exactly once:
// one invoice and one invoice.finalized each, and between them they report each period
// closed once (neither prices a period the other holds).
func TestTwoClosersCloseEachPeriodOnce(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFixed(t0)
	a, b := servertest.NewAt(t, clk), servertest.NewAt(t, clk)
	owner := pgtest.Owner(t)
	prefix := "two-closers-" + strings.ToLower(uuid.NewString()[:8]) + "-"
	const tenants = 60
	if _, err := owner.Exec(ctx, `
		INSERT INTO tenants (id, name, slug, plan_code, created_at)
		SELECT gen_random_uuid(), 'closers', $1 || i, 'free', $2 FROM generate_series(1, $3) i`, prefix, t0, tenants); err != nil {
		t.Fatal(err)
	}
	ids := func(sql string) int {
		t.Helper()
		var n int
		if err := owner.QueryRow(ctx, sql, prefix+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Cleanup(func() {
		for _, sql := range []string{"invoices", "billing_periods", "outbox"} {
			owner.Exec(ctx, "DELETE FROM "+sql+" WHERE tenant_id IN (SELECT id FROM tenants WHERE slug LIKE $1)", prefix+"%")
		}
		owner.Exec(ctx, "DELETE FROM tenants WHERE slug LIKE $1", prefix+"%")
	})
	if _, err := a.App.Invoices.Close(ctx); err != nil { // stores each tenant's first period
		t.Fatal(err)
	}
	if n := ids("SELECT count(*) FROM billing_periods p JOIN tenants t ON t.id = p.tenant_id WHERE t.slug LIKE $1"); n != tenants {
		t.Fatalf("%d periods stored for %d new tenants", n, tenants)
	}

	clk.Advance(t0.AddDate(0, 1, 0).Add(a.App.Invoices.Grace + time.Hour).Sub(clk.Now()))
	allInvoices := func() int { // other tests' tenants may fall due too
		t.Helper()
		var n int
		if err := owner.QueryRow(ctx, "SELECT count(*) FROM invoices").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := allInvoices()
	var closed [2]int
	var wg sync.WaitGroup
	for i, s := range []*servertest.Server{a, b} {
		wg.Go(func() {
			n, err := s.App.Invoices.Close(ctx)
			if err != nil {
				t.Error(err)
			}
			closed[i] = n
		})
	}
	wg.Wait()
	if made := allInvoices() - before; closed[0]+closed[1] != made || made < tenants {
		t.Errorf("the closers report %d and %d periods finalized, and made %d invoices (at least %d due): want each finalized once", closed[0], closed[1], made, tenants)
	}
	if n := ids("SELECT count(*) FROM invoices i JOIN tenants t ON t.id = i.tenant_id WHERE t.slug LIKE $1"); n != tenants {
		t.Errorf("%d invoices, want one per tenant (%d)", n, tenants)
	}
	if n := ids("SELECT count(*) FROM outbox o JOIN tenants t ON t.id = o.tenant_id WHERE t.slug LIKE $1 AND o.type = 'invoice.finalized'"); n != tenants {
		t.Errorf("%d invoice.finalized events, want one per tenant (%d)", n, tenants)
	}
	if n := ids("SELECT count(*) FROM billing_periods p JOIN tenants t ON t.id = p.tenant_id WHERE t.slug LIKE $1 AND p.closed_at IS NULL AND p.period_end <= '2026-07-01'"); n != 0 {
		t.Errorf("%d ended periods not marked invoiced", n)
	}
	for _, s := range []*servertest.Server{a, b} {
		if n, err := s.App.Invoices.Close(ctx); err != nil || n != 0 {
			t.Errorf("a further run finalized %d (%v), want nothing left to do", n, err)
		}
	}
}
