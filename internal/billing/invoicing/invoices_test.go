package invoicing_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
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
	s1.MeteredPlan(t)
	a, b := s1.Signup(t, "inv-a"), s1.Signup(t, "inv-b")
	s1.OnPlan(t, a, "metered")
	s1.OnPlan(t, b, "metered")
	periodEnd := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC) // created on the 10th, in UTC

	for _, ten := range []servertest.Tenant{a, b} {
		if res := s1.Ingest(t, s1.TokenFor(t, ten), servertest.TokensEvent("e1", clk.Now().Add(-time.Hour), 100)); res.Status != 200 {
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
	late := servertest.TokensEvent("e2", periodEnd.Add(-time.Microsecond), 50)
	if res := s1.Ingest(t, s1.TokenFor(t, a), late); res.Status != 200 {
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
	res := s1.Ingest(t, tok, servertest.TokensEvent("e3", periodEnd.Add(-time.Hour), 5))
	if p := res.Problem(t); res.Status != 400 || p.Code != "event_too_late" {
		t.Fatalf("event in a finalized period: %d %s", res.Status, res.Body)
	}
	res = s1.Ingest(t, tok, []servertest.CloudEvent{late})
	var r struct{ Accepted, Duplicates int }
	res.Decode(t, &r)
	if res.Status != 200 || r.Duplicates != 1 {
		t.Fatalf("retried late event: %d %s, want a duplicate", res.Status, res.Body)
	}
	if res := s1.Ingest(t, tok, servertest.TokensEvent("e4", periodEnd, 5)); res.Status != 200 {
		t.Fatalf("event at the new period's start: %d %s", res.Status, res.Body)
	}
	var evs struct{ Data []json.RawMessage }
	s1.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?type=invoice.finalized", Token: tok}).Decode(t, &evs)
	if len(evs.Data) != 1 {
		t.Fatalf("%d invoice.finalized events, want 1", len(evs.Data))
	}
}
