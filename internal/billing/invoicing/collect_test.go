package invoicing_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// A finalized invoice is collected through the payments path from the tenant's default
// payment method, once however often the collector runs: paid, or payment_failed on a decline.
func TestInvoicesAreCollectedOnce(t *testing.T) {
	fake := stripetest.NewFake(t)
	clk := clock.NewFixed(time.Date(2026, 5, 3, 9, 0, 0, 0, time.UTC))
	s := servertest.NewAt(t, clk, stripetest.Configure(fake.URL))
	s.MeteredPlan(t)
	good, bad := s.Signup(t, "collect-good"), s.Signup(t, "collect-bad")
	for ten, pm := range map[*servertest.Tenant]string{&good: "pm_card_visa", &bad: "pm_card_chargeDeclined"} {
		s.OnPlan(t, *ten, "metered")
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/tenant", Token: ten.Token, Body: map[string]string{"default_payment_method": pm}})
		if res.Status != 200 {
			t.Fatalf("PATCH tenant: %d %s", res.Status, res.Body)
		}
	}
	clk.Advance(32 * 24 * time.Hour) // past the period's end and its grace
	if n, err := s.App.Invoices.Close(context.Background()); err != nil || n != 2 {
		t.Fatalf("closer: %d, %v", n, err)
	}
	collector := s.App.Collector
	for range 3 {
		if _, err := collector.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if fake.Creates() != 2 {
		t.Fatalf("%d PaymentIntents, want 2 (one per invoice)", fake.Creates())
	}
	for ten, want := range map[servertest.Tenant]string{good: "paid", bad: "payment_failed"} {
		invs := invoices(t, s, s.TokenFor(t, ten))
		if len(invs) != 1 || invs[0].Status != want || invs[0].Total != 1000 {
			t.Fatalf("%s: invoices %+v, want one of 10.00 usd %s", ten.Slug, invs, want)
		}
	}
	if len(fake.Customers()) != 2 {
		t.Fatalf("%d Stripe customers, want one per tenant", len(fake.Customers()))
	}
}

// Test 7: the reporter, run twice, sends each identifier once, and the sum reported for a
// period equals ours; late usage goes out as a correction under a new identifier.
func TestUsageReportedToStripeOnce(t *testing.T) {
	fake := stripetest.NewFake(t)
	clk := clock.NewFixed(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))
	fake.Now = clk.Now
	s := servertest.NewAt(t, clk, stripetest.Configure(fake.URL))
	s.PutMeter(t, "tokens", map[string]any{"event_type": "tokens", "aggregation": "sum", "value_property": "$.n"})
	a := s.Signup(t, "report")
	tok := s.TokenFor(t, a)
	for i, n := range []int{5, 7, 11} {
		s.Ingest(t, tok, servertest.TokensEvent("r"+string(rune('a'+i)), clk.Now().Add(-time.Duration(i)*20*time.Minute), n))
	}
	clk.Advance(20 * time.Minute)
	reporter := s.App.Reporter
	for range 2 {
		if _, err := reporter.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	sum := func() (decimal.Decimal, int) {
		total, ids := decimal.Zero, map[string]bool{}
		for _, e := range fake.MeterEvents() {
			if e.EventName != "tokens" {
				continue
			}
			if ids[e.Identifier] {
				t.Fatalf("identifier %s sent twice", e.Identifier)
			}
			ids[e.Identifier] = true
			total = total.Add(decimal.RequireFromString(e.Value))
		}
		return total, len(ids)
	}
	if total, n := sum(); !total.Equal(decimal.NewFromInt(23)) || n != 3 {
		t.Fatalf("reported %s in %d events, want 23 in 3", total, n)
	}
	// Late usage in a bucket already reported: a correction.
	if res := s.Ingest(t, s.TokenFor(t, a), servertest.TokensEvent("late", clk.Now().Add(-50*time.Minute), 4)); res.Status != 200 {
		t.Fatalf("late event: %d %s", res.Status, res.Body)
	}
	for range 2 {
		if _, err := reporter.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if total, n := sum(); !total.Equal(decimal.NewFromInt(27)) || n != 4 {
		t.Fatalf("after a late event reported %s in %d events, want 27 in 4", total, n)
	}
}

// The wire: customers and meter events go through stripe-mock v0.203.0 (Stripe's own API
// description) without an error.
func TestUsageReportAgainstStripeMock(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC())
	s := servertest.NewAt(t, clk, stripetest.Configure(stripetest.StartMock(t)))
	s.PutMeter(t, "wire_tokens", map[string]any{"event_type": "wire", "aggregation": "sum", "value_property": "$.n"})
	a := s.Signup(t, "report-wire")
	s.Ingest(t, a.Token, servertest.CloudEvent{SpecVersion: "1.0", ID: "w1", Source: "s", Type: "wire", Time: clk.Now().Add(-time.Minute).Format(time.RFC3339Nano), Data: map[string]any{"n": 3}})
	clk.Advance(30 * time.Minute)
	reporter := s.App.Reporter
	if n, err := reporter.Run(context.Background()); err != nil || n < 1 {
		t.Fatalf("reporter against stripe-mock: %d sent, %v", n, err)
	}
}
