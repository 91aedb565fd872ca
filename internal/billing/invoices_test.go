package billing_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

type invoice struct {
	ID          string            `json:"id"`
	PeriodStart time.Time         `json:"period_start"`
	PeriodEnd   time.Time         `json:"period_end"`
	Lines       []json.RawMessage `json:"lines"`
	Subtotal    int64             `json:"subtotal"`
	Total       int64             `json:"total"`
	Status      string            `json:"status"`
}

// meteredPlan is a plan with a base fee and a standard charge on a sum meter.
func meteredPlan(t *testing.T, s *servertest.Server) {
	putMeter(t, s, "tokens", map[string]any{"event_type": "tokens", "aggregation": "sum", "value_property": "$.n"})
	res := s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/plans/metered", Token: s.PlatformToken(t), Body: map[string]any{
		"name": "Metered", "currency": "usd", "base_fee": "10",
		"rate_limit": map[string]any{"requests_per_second": 100, "burst": 100},
		"quotas":     map[string]any{"tokens": map[string]any{"limit": 1000, "enforcement": "soft"}},
		"charges":    []any{map[string]any{"meter": "tokens", "model": "standard", "unit_price": "0.01"}},
	}})
	if res.Status != 201 && res.Status != 200 {
		t.Fatalf("PUT plan: %d %s", res.Status, res.Body)
	}
}

func onPlan(t *testing.T, s *servertest.Server, ten servertest.Tenant, plan string) {
	res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + ten.ID, Token: s.PlatformToken(t), Body: map[string]string{"plan": plan}})
	if res.Status != 200 {
		t.Fatalf("PATCH plan: %d %s", res.Status, res.Body)
	}
}

func tokensEvent(id string, at time.Time, n int) cloudEvent {
	return cloudEvent{SpecVersion: "1.0", ID: id, Source: "test", Type: "tokens", Time: at.Format(time.RFC3339Nano), Data: map[string]any{"n": n}}
}

func upcoming(t *testing.T, s *servertest.Server, token string) invoice {
	var inv invoice
	res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/invoices/upcoming", Token: token})
	if res.Status != 200 {
		t.Fatalf("upcoming: %d %s", res.Status, res.Body)
	}
	res.Decode(t, &inv)
	return inv
}

func invoices(t *testing.T, s *servertest.Server, token string) []invoice {
	var list struct{ Data []invoice }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/invoices", Token: token}).Decode(t, &list)
	return list.Data
}

// Test 3 and 5: an event inside the grace window counts; after finalization one is refused
// (a retried batch still answers as duplicates); the finalized invoice equals the last preview;
// the closer run twice, or on two instances at once, produces one invoice.
func TestPeriodsCloseIntoOneInvoice(t *testing.T) {
	clk := clock.NewFixed(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	s1 := servertest.NewAt(t, clk)
	s2 := servertest.NewAt(t, clk)
	meteredPlan(t, s1)
	a, b := s1.Signup(t, "inv-a"), s1.Signup(t, "inv-b")
	onPlan(t, s1, a, "metered")
	onPlan(t, s1, b, "metered")
	periodEnd := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC) // created on the 10th, in UTC

	for _, ten := range []servertest.Tenant{a, b} {
		if res := ingest(t, s1, s1.TokenFor(t, ten), tokensEvent("e1", clk.Now().Add(-time.Hour), 100)); res.Status != 200 {
			t.Fatalf("ingest: %d %s", res.Status, res.Body)
		}
	}
	clk.Advance(periodEnd.Sub(clk.Now()) - time.Minute)
	previewB := upcoming(t, s1, s1.TokenFor(t, b))
	if previewB.Total != 1000+100 || !previewB.PeriodEnd.Equal(periodEnd) {
		t.Fatalf("preview %+v, want 11.00 usd for the period ending %s", previewB, periodEnd)
	}

	// Inside the grace window, late usage of the ended period still counts.
	clk.Advance(time.Hour)
	late := tokensEvent("e2", periodEnd.Add(-time.Microsecond), 50)
	if res := ingest(t, s1, s1.TokenFor(t, a), late); res.Status != 200 {
		t.Fatalf("late event inside the grace window: %d %s", res.Status, res.Body)
	}
	if n, err := s1.App.Invoices.Close(context.Background()); err != nil || n != 0 {
		t.Fatalf("closer during the grace window finalized %d, %v", n, err)
	}

	// After the grace period: the closer, twice and on two instances at once.
	clk.Advance(25 * time.Hour)
	var wg sync.WaitGroup
	for _, s := range []*servertest.Server{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.App.Invoices.Close(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	invB := invoices(t, s1, s1.TokenFor(t, b))
	if len(invB) != 1 {
		t.Fatalf("tenant B has %d invoices, want 1", len(invB))
	}
	if got, want := invB[0], previewB; got.Total != want.Total || got.Subtotal != want.Subtotal ||
		!got.PeriodStart.Equal(want.PeriodStart) || len(got.Lines) != len(want.Lines) || got.Status != "open" {
		t.Fatalf("finalized %+v, last preview %+v", got, want)
	}
	for i := range invB[0].Lines {
		if string(invB[0].Lines[i]) != string(previewB.Lines[i]) {
			t.Fatalf("line %d: finalized %s, preview %s", i, invB[0].Lines[i], previewB.Lines[i])
		}
	}
	invA := invoices(t, s1, s1.TokenFor(t, a))
	if len(invA) != 1 || invA[0].Total != 1000+150 {
		t.Fatalf("tenant A's invoices %+v, want one of 11.50 usd with the late event", invA)
	}

	// After finalization: too late, but a retry of an accepted event is a duplicate.
	tok := s1.TokenFor(t, a)
	res := ingest(t, s1, tok, tokensEvent("e3", periodEnd.Add(-time.Hour), 5))
	if p := res.Problem(t); res.Status != 400 || p.Code != "event_too_late" {
		t.Fatalf("event in a finalized period: %d %s", res.Status, res.Body)
	}
	res = ingest(t, s1, tok, []cloudEvent{late})
	var r struct{ Accepted, Duplicates int }
	res.Decode(t, &r)
	if res.Status != 200 || r.Duplicates != 1 {
		t.Fatalf("retried late event: %d %s, want a duplicate", res.Status, res.Body)
	}
	if res := ingest(t, s1, tok, tokensEvent("e4", periodEnd, 5)); res.Status != 200 {
		t.Fatalf("event at the new period's start: %d %s", res.Status, res.Body)
	}
	var evs struct{ Data []json.RawMessage }
	s1.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?type=invoice.finalized", Token: tok}).Decode(t, &evs)
	if len(evs.Data) != 1 {
		t.Fatalf("%d invoice.finalized events, want 1", len(evs.Data))
	}
}

// Entitlements show each quota of the plan against this period's usage.
func TestEntitlements(t *testing.T) {
	s := servertest.New(t)
	meteredPlan(t, s)
	a := s.Signup(t, "ent")
	onPlan(t, s, a, "metered")
	ingest(t, s, a.Token, tokensEvent("x", time.Now().Add(-time.Minute), 900))
	var ent struct {
		Data []struct {
			Meter     string
			Limit     int64
			Usage     float64
			Remaining float64
			HasAccess bool `json:"has_access"`
		}
	}
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/entitlements", Token: a.Token}).Decode(t, &ent)
	if len(ent.Data) != 1 || ent.Data[0].Meter != "tokens" || ent.Data[0].Usage != 900 || ent.Data[0].Remaining != 100 || !ent.Data[0].HasAccess {
		t.Fatalf("entitlements %+v", ent.Data)
	}
	// 900 of 1000 passed the 80% threshold: one event, and none again on more usage below 100%.
	ingest(t, s, a.Token, tokensEvent("y", time.Now().Add(-time.Minute), 1))
	var evs struct{ Data []json.RawMessage }
	s.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?type=usage.quota_threshold_reached", Token: a.Token}).Decode(t, &evs)
	if len(evs.Data) != 1 {
		t.Fatalf("%d threshold events, want 1 (80%%)", len(evs.Data))
	}
}

func planWithRequestQuota(t *testing.T, s *servertest.Server, code, enforcement string, limit int) {
	res := s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/plans/" + code, Token: s.PlatformToken(t), Body: map[string]any{
		"name": code, "currency": "usd", "base_fee": "0",
		"rate_limit": map[string]any{"requests_per_second": 1000, "burst": 1000},
		"quotas":     map[string]any{"api_requests": map[string]any{"limit": limit, "enforcement": enforcement}},
	}})
	if res.Status != 201 && res.Status != 200 {
		t.Fatalf("PUT plan: %d %s", res.Status, res.Body)
	}
}

// Test 6: requests past a hard quota are 429 quota_exceeded; a soft quota lets them through
// and emits the threshold events, once each.
func TestRequestQuotas(t *testing.T) {
	s := servertest.New(t)
	ctx := context.Background()
	planWithRequestQuota(t, s, "tiny-hard", "hard", 5)
	planWithRequestQuota(t, s, "tiny-soft", "soft", 5)
	hard, soft := s.Signup(t, "quota-hard"), s.Signup(t, "quota-soft")
	onPlan(t, s, hard, "tiny-hard")
	onPlan(t, s, soft, "tiny-soft")
	get := func(ten servertest.Tenant) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects", Token: ten.Token})
	}
	for range 3 {
		get(hard)
		get(soft)
	}
	if _, err := s.App.Requests.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for range 4 {
		statuses = append(statuses, get(hard).Status)
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 || statuses[3] != 429 {
		t.Fatalf("statuses past 3 of 5: %v, want 200 200 429 429", statuses)
	}
	res := get(hard)
	if p := res.Problem(t); p.Code != "quota_exceeded" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("quota answer: %s %v", res.Body, res.Header)
	}
	for range 10 {
		if res := get(soft); res.Status != 200 {
			t.Fatalf("soft quota refused: %d %s", res.Status, res.Body)
		}
	}
	if _, err := s.App.Requests.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.App.Requests.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The hard tenant can read nothing now, its event log included: read the outbox directly.
	for _, ten := range []servertest.Tenant{hard, soft} {
		rows, err := pgtest.Owner(t).Query(ctx, `SELECT (data->>'threshold')::int FROM outbox
			WHERE tenant_id = $1 AND type = 'usage.quota_threshold_reached' ORDER BY id`, ten.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != 80 || got[1] != 100 {
			t.Fatalf("%s: threshold events %v, want 80 then 100, once each", ten.Slug, got)
		}
	}
}
