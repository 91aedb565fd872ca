package metering_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// storedEvents counts a tenant's stored usage events.
func storedEvents(t *testing.T, tenantID string) int {
	t.Helper()
	var n int
	if err := pgtest.Owner(t).QueryRow(context.Background(), "SELECT count(*) FROM usage_events WHERE tenant_id = $1", tenantID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantRefused checks that res is the 400 that refuses a whole batch for one event at index
// whose field is the problem.
func wantRefused(t *testing.T, res *servertest.Response, index int, field string) {
	t.Helper()
	if res.Status != 400 {
		t.Errorf("status %d, want 400 naming [%d] %s: %s", res.Status, index, field, res.Body)
		return
	}
	p := res.Problem(t)
	if p.Code != "validation_failed" || len(p.Errors) != 1 || p.Errors[0].Index == nil || *p.Errors[0].Index != index || p.Errors[0].Field != field {
		t.Errorf("%s, want validation_failed with one error naming [%d] %s", res.Body, index, field)
	}
}

// A member cannot lower the invoice, reopen a quota or break pricing with a usage value: a
// value is a finite number from 0 to 10^15 with at most 12 decimal places, as a JSON number
// or a numeric string; anything else refuses the whole batch, naming the event and field.
func TestUsageValuesAreBounded(t *testing.T) {
	s := servertest.New(t)
	s.MeteredPlan(t) // the sum meter "tokens" on $.n, at 0.01 usd, and a 10 usd base fee
	s.PutMeter(t, "tokens_peak", map[string]any{"event_type": "tokens", "aggregation": "max", "value_property": "$.n"})
	a := s.Signup(t, "usage-bounds")
	s.OnPlan(t, a, "metered")
	_, member := s.LoginNewUser(t, a, "member")
	at := time.Now().UTC().Add(-time.Minute)

	for _, v := range []string{
		`-1100`, `"-1100"`, `-0.5`, `-1e-12`,
		`1e30`, `1e309`, `"1e309"`, `1e999999999`, `"1e-999999999"`,
		`1000000000000001`, `1000000000000000.000000000001`, `"1e16"`, `1.0000000000000001e15`,
		`1e-13`, `0.0000000000001`, `"123.4567890123456"`, `2.500000000000000`, `15e-13`, `0e-13`, `0e99999`,
		`"NaN"`, `"Infinity"`, `"-Infinity"`, `"0x10"`, `" 5"`, `"5 "`, `"1_000"`, `""`, `"."`, `"1e"`,
		`true`, `null`, `[1]`, `{"n": 1}`,
	} {
		hostile := servertest.TokensEvent("hostile", at, 0)
		hostile.Data = map[string]any{"n": json.RawMessage(v)}
		batch := []servertest.CloudEvent{
			servertest.TokensEvent("ok-0", at, 1), servertest.TokensEvent("ok-1", at, 1), servertest.TokensEvent("ok-2", at, 1), hostile,
		}
		t.Run(v, func(t *testing.T) { wantRefused(t, s.Ingest(t, member.AccessToken, batch), 3, "data.n") })
	}
	if n := storedEvents(t, a.ID); n != 0 {
		t.Fatalf("%d events stored from refused batches", n)
	}

	// The bounds themselves, every spelling of a number, and zero however it is written.
	accepted := map[string]string{
		"zero": `0`, "minus zero": `-0`, "zero string": `"+0.0"`, "zero exponent": `0e15`,
		"smallest": `0.000000000001`, "exponent string": `"1.5e3"`, "exponent": `1E+2`,
		"decimal": `2.5`, "twelve places": `"0.0000000001e-2"`,
	}
	var evs []servertest.CloudEvent
	for name, v := range accepted {
		ev := servertest.TokensEvent(name, at, 0)
		ev.Data = map[string]any{"n": json.RawMessage(v)}
		evs = append(evs, ev)
	}
	if res := s.Ingest(t, member.AccessToken, evs); res.Status != 200 {
		t.Fatalf("values within the bounds: %d %s", res.Status, res.Body)
	}
	// 1602.500000000002 tokens at 0.01 usd is 16.02500000000002 usd: 1603 cents, plus the
	// base fee. Nothing of the refused batches counts.
	var inv struct{ Total int64 }
	res := s.Get(t, member.AccessToken, "/v1/invoices/upcoming")
	res.Decode(t, &inv)
	if res.Status != 200 || inv.Total != 1000+1603 {
		t.Fatalf("upcoming: %d %s, want a total of 2603", res.Status, res.Body)
	}
}

// Every string of an event, its attributes and its data (values and keys), must be text: NUL
// and invalid UTF-8 (raw bytes or a lone surrogate escape) refuse the batch, naming the field.
func TestUsageStringsAreText(t *testing.T) {
	s := servertest.New(t)
	s.PutMeter(t, "text_users", map[string]any{"event_type": "text", "aggregation": "unique_count", "value_property": "$.user", "group_by": map[string]string{"region": "$.region"}})
	a := s.Signup(t, "usage-text")
	ok := `{"specversion":"1.0","id":"ok","source":"s","type":"text","data":{"user":"u","region":"eu"}}`
	for _, tt := range []struct{ event, field string }{
		{`{"specversion":"1.0","id":"a\u0000","source":"s","type":"text","data":{"user":"u"}}`, "id"},
		{"{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"s\xff\",\"type\":\"text\",\"data\":{\"user\":\"u\"}}", "source"},
		{`{"specversion":"1.0","id":"a","source":"s","type":"text","subject":"\ud800","data":{"user":"u"}}`, "subject"},
		{`{"specversion":"1.0","id":"a","source":"s","type":"text","data":{"user":"\u0000"}}`, "data.user"},
		{"{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"s\",\"type\":\"text\",\"data\":{\"user\":\"u\",\"region\":\"\xc3\"}}", "data.region"},
		{`{"specversion":"1.0","id":"a","source":"s","type":"text","data":{"user":"u","tags":["x","\udc00y"]}}`, "data.tags[1]"},
		{`{"specversion":"1.0","id":"a","source":"s","type":"text","data":{"user":"u","deep":{"k":"\ud83d\u0041"}}}`, "data.deep.k"},
		{`{"specversion":"1.0","id":"a","source":"s","type":"text","region":"eu\u0000","data":{"user":"u"}}`, "region"},
	} {
		t.Run(tt.field, func(t *testing.T) {
			wantRefused(t, s.Ingest(t, a.Token, "["+ok+","+ok+","+tt.event+"]"), 2, tt.field)
		})
	}
	// A key is a string too: the field names the object that holds it.
	res := s.Ingest(t, a.Token, `{"specversion":"1.0","id":"a","source":"s","type":"text","data":{"user":"u","k\u0000":"v"}}`)
	if p := res.Problem(t); res.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "data" {
		t.Errorf("a key holding NUL: %d %s", res.Status, res.Body)
	}
	if n := storedEvents(t, a.ID); n != 0 {
		t.Fatalf("%d events stored from refused batches", n)
	}
	// Escapes that are text are text: a surrogate pair, U+FFFD itself, non-ASCII UTF-8.
	res = s.Ingest(t, a.Token, `{"specversion":"1.0","id":"b","source":"s","type":"text","subject":"\ud83d\ude00","data":{"user":"\ufffd","region":"Zürich"}}`)
	if res.Status != 200 {
		t.Fatalf("valid text: %d %s", res.Status, res.Body)
	}
}

// Usage at the value bound, in any amount, never stops a tenant's invoice from being priced:
// GET /v1/invoices/upcoming answers, its lines add up, an amount too large for an invoice is
// capped at pricing.MaxAmount, and the period closer finalizes the same invoice.
func TestInvoiceAtTheValueBound(t *testing.T) {
	clk := clock.NewFixed(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	s := servertest.NewAt(t, clk)
	s.PutMeter(t, "bound_units", map[string]any{"event_type": "bound", "aggregation": "sum", "value_property": "$.n"})
	tiers := []any{
		map[string]any{"up_to": 1000, "unit_price": "0", "flat_fee": "1"},
		map[string]any{"up_to": nil, "unit_price": "0.5", "flat_fee": "2"},
	}
	s.PutPlan(t, "bound", map[string]any{
		"name": "Bound", "currency": "usd", "base_fee": "10",
		"rate_limit": map[string]any{"requests_per_second": 100, "burst": 100},
		"charges": []any{
			// First, a line that fits: 5×10^18 units at 10^-12 usd are 5,000,000 usd.
			map[string]any{"meter": "bound_units", "model": "standard", "unit_price": "0.000000000001"},
			map[string]any{"meter": "bound_units", "model": "standard", "unit_price": "1000000"},
			map[string]any{"meter": "bound_units", "model": "graduated", "tiers": tiers},
			map[string]any{"meter": "bound_units", "model": "volume", "tiers": tiers},
			map[string]any{"meter": "bound_units", "model": "package", "package_size": 1, "price": "1000"},
			map[string]any{"meter": "bound_units", "model": "percentage", "rate": "100", "fixed_fee": "1000000"},
		},
	})
	a := s.Signup(t, "usage-bound")
	s.OnPlan(t, a, "bound")
	const batches = 5
	for b := range batches {
		evs := make([]servertest.CloudEvent, 1000)
		for i := range evs {
			evs[i] = servertest.CloudEvent{SpecVersion: "1.0", ID: fmt.Sprintf("%d-%d", b, i), Source: "s", Type: "bound",
				Time: clk.Now().Add(-time.Hour).Format(time.RFC3339Nano), Data: map[string]any{"n": json.RawMessage(`1e15`)}}
		}
		if res := s.Ingest(t, s.TokenFor(t, a), evs); res.Status != 200 {
			t.Fatalf("batch %d at the bound: %d %s", b, res.Status, res.Body)
		}
	}

	type line struct {
		Description string
		Quantity    json.Number
		Amount      int64
	}
	type invoice struct {
		Lines           []line
		Subtotal, Total int64
	}
	res := s.Get(t, s.TokenFor(t, a), "/v1/invoices/upcoming")
	var preview invoice
	res.Decode(t, &preview)
	if res.Status != 200 {
		t.Fatalf("upcoming at the bound: %d %s", res.Status, res.Body)
	}
	// The base fee and the line that fits are exact; the first line past the cap takes what
	// is left of it, and the lines after that nothing.
	wantAmounts := []int64{1000, 500_000_000, pricing.MaxAmount - 1000 - 500_000_000, 0, 0, 0, 0}
	if len(preview.Lines) != len(wantAmounts) {
		t.Fatalf("upcoming has %d lines, want %d: %s", len(preview.Lines), len(wantAmounts), res.Body)
	}
	var sum int64
	for i, l := range preview.Lines {
		sum += l.Amount
		if l.Amount != wantAmounts[i] {
			t.Errorf("line %d (%s): amount %d, want %d", i, l.Description, l.Amount, wantAmounts[i])
		}
		if i > 0 && l.Quantity != "5000000000000000000" {
			t.Errorf("line %d (%s): quantity %s, want 5×10^18", i, l.Description, l.Quantity)
		}
	}
	if preview.Subtotal != sum || preview.Total != pricing.MaxAmount {
		t.Fatalf("subtotal %d and total %d; want the lines' sum %d, which is the cap %d", preview.Subtotal, preview.Total, sum, pricing.MaxAmount)
	}

	// The closer finalizes this tenant's period like any other's, equal to the preview.
	clk.Advance(time.Date(2026, 4, 11, 12, 0, 0, 0, time.UTC).Sub(clk.Now()))
	if _, err := s.App.Invoices.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var list struct{ Data []invoice }
	res = s.Get(t, s.TokenFor(t, a), "/v1/invoices")
	res.Decode(t, &list)
	if len(list.Data) != 1 {
		t.Fatalf("%d invoices after the closer ran, want 1: %s", len(list.Data), res.Body)
	}
	if got := list.Data[0]; got.Total != preview.Total || len(got.Lines) != len(preview.Lines) {
		t.Fatalf("finalized %+v, preview %+v", got, preview)
	}
}
