package metering_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

type usageAnswer struct {
	Data []struct {
		WindowStart time.Time       `json:"window_start"`
		WindowEnd   time.Time       `json:"window_end"`
		Value       json.Number     `json:"value"`
		Group       json.RawMessage `json:"group"`
	}
}

func usagePath(meter string, from, to time.Time, extra string) string {
	return fmt.Sprintf("/v1/meters/%s/usage?from=%s&to=%s%s", meter, url.QueryEscape(from.Format(time.RFC3339Nano)), url.QueryEscape(to.Format(time.RFC3339Nano)), extra)
}

// Any range, ragged at both ends, inside one bucket, empty or on bucket boundaries, answers
// what a brute-force sum over the events ingested gives: total, per group, and per hour.
func TestUsageOverAnyRange(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "usage-range")
	usageMeters(t, s, "rng")
	rng := rand.New(rand.NewPCG(3, 4))
	now := time.Now().UTC()
	start := now.Add(-6 * time.Hour).Truncate(metering.RollupGranule)
	type ev struct {
		at     time.Time
		tokens decimal.Decimal
		model  string
	}
	var evs []ev
	var batch []servertest.CloudEvent
	for i := range 2000 {
		at := start.Add(time.Duration(rng.Int64N(int64(5*time.Hour))) / time.Microsecond * time.Microsecond)
		if i%50 == 0 {
			at = start.Add(time.Duration(rng.IntN(20)) * metering.RollupGranule) // on a bucket edge
		}
		e := ev{at, decimal.New(rng.Int64N(100000), -2), []string{"small", "large", "huge"}[rng.IntN(3)]}
		evs = append(evs, e)
		batch = append(batch, servertest.CloudEvent{SpecVersion: "1.0", ID: fmt.Sprint("r-", i), Source: "range", Type: "rng",
			Time: at.Format(time.RFC3339Nano), Data: map[string]any{"tokens": json.Number(e.tokens.String()), "model": e.model}})
		if len(batch) == 500 {
			if res := s.Ingest(t, a.Token, batch); res.Status != 200 {
				t.Fatalf("ingest: %d %s", res.Status, res.Body)
			}
			batch = nil
		}
	}
	brute := func(from, to time.Time, model string, count bool) decimal.Decimal {
		sum := decimal.Zero
		for _, e := range evs {
			if !e.at.Before(from) && e.at.Before(to) && (model == "" || e.model == model) {
				if count {
					sum = sum.Add(decimal.NewFromInt(1))
				} else {
					sum = sum.Add(e.tokens)
				}
			}
		}
		return sum
	}
	query := func(path string) usageAnswer {
		t.Helper()
		res := s.Get(t, a.Token, path)
		if res.Status != 200 {
			t.Fatalf("%s: %d %s", path, res.Status, res.Body)
		}
		var ans usageAnswer
		res.Decode(t, &ans)
		return ans
	}
	same := func(what string, got json.Number, want decimal.Decimal) {
		t.Helper()
		g, err := decimal.NewFromString(string(got))
		if err != nil || !g.Equal(want) {
			t.Errorf("%s: %s, brute force %s", what, got, want)
		}
	}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ranges := [][2]time.Time{
		{at(7*time.Minute + 123456*time.Microsecond), at(4*time.Hour + 2*time.Minute + 1*time.Microsecond)}, // ragged both ends
		{at(31 * time.Minute), at(44*time.Minute + 59*time.Second)},                                         // inside one bucket
		{at(time.Hour + 1*time.Microsecond), at(time.Hour + 2*time.Microsecond)},                            // a microsecond
		{at(-3 * time.Hour), at(-2*time.Hour - 3*time.Minute)},                                              // before every event: empty
		{at(15 * time.Minute), at(3 * time.Hour)},                                                           // whole buckets
		{at(15 * time.Minute), at(3*time.Hour + 1*time.Minute)},                                             // ragged end only
		{at(14*time.Minute + 59*time.Second), at(3 * time.Hour)},                                            // ragged start only
		{at(-time.Hour - 7*time.Minute), at(6*time.Hour + 3*time.Minute)},                                   // around everything
	}
	for range 6 {
		from := at(time.Duration(rng.Int64N(int64(5 * time.Hour)))).Truncate(time.Microsecond)
		ranges = append(ranges, [2]time.Time{from, from.Add(time.Duration(1 + rng.Int64N(int64(2*time.Hour)))).Truncate(time.Microsecond)})
	}
	for i, r := range ranges {
		from, to := r[0], r[1]
		for _, meter := range []string{"rng_tokens", "rng_calls"} {
			count := meter == "rng_calls"
			ans := query(usagePath(meter, from, to, ""))
			want := brute(from, to, "", count)
			if len(ans.Data) != 1 || !ans.Data[0].WindowStart.Equal(from) || !ans.Data[0].WindowEnd.Equal(to) {
				t.Fatalf("range %d %s: %+v, want one element covering [from, to)", i, meter, ans.Data)
			}
			same(fmt.Sprintf("range %d %s total", i, meter), ans.Data[0].Value, want)
		}
		// Per group.
		ans := query(usagePath("rng_tokens", from, to, "&group_by=model"))
		seen := map[string]bool{}
		for _, row := range ans.Data {
			var g struct{ Model string }
			json.Unmarshal(row.Group, &g)
			seen[g.Model] = true
			same(fmt.Sprintf("range %d model %s", i, g.Model), row.Value, brute(from, to, g.Model, false))
		}
		for _, m := range []string{"small", "large", "huge"} {
			if !seen[m] && !brute(from, to, m, true).IsZero() {
				t.Errorf("range %d: model %s has events but no row", i, m)
			}
		}
		// Per hour, in a zone half an hour off UTC: each window against its own brute force.
		ans = query(usagePath("rng_tokens", from, to, "&window=hour&tz=Asia/Kolkata"))
		total := decimal.Zero
		for j, row := range ans.Data {
			if j > 0 && !row.WindowStart.Equal(ans.Data[j-1].WindowEnd) {
				t.Errorf("range %d: window %d starts at %s, the last ended at %s", i, j, row.WindowStart, ans.Data[j-1].WindowEnd)
			}
			same(fmt.Sprintf("range %d hour %s", i, row.WindowStart), row.Value, brute(row.WindowStart, row.WindowEnd, "", false))
			v, _ := decimal.NewFromString(string(row.Value))
			total = total.Add(v)
		}
		same(fmt.Sprintf("range %d sum of hours", i), json.Number(total.String()), brute(from, to, "", false))
	}
}

// Raw events go once they are past the dedupe window and their period is invoiced; a range
// that would need them is refused unless it falls on bucket boundaries, which rollups answer.
// The reaper deletes only those events, and dedupe keys past the window.
func TestUsageRetention(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFixed(time.Now().UTC().Add(-40 * 24 * time.Hour).Truncate(time.Second))
	s := servertest.NewAt(t, clk)
	a := s.Signup(t, "usage-keep")
	b := s.Signup(t, "usage-keep-b")
	usageMeters(t, s, "keep")
	s.PutMeter(t, "keep_peak", map[string]any{"event_type": "keep", "aggregation": "max", "value_property": "$.tokens"})
	t0 := clk.Now()
	event := func(id string, at time.Time) servertest.CloudEvent {
		return servertest.CloudEvent{SpecVersion: "1.0", ID: id, Source: "keep", Type: "keep", Time: at.Format(time.RFC3339Nano), Data: map[string]any{"tokens": 5, "model": "m"}}
	}
	// Two events 40 days ago, for both tenants.
	for _, ten := range []servertest.Tenant{a, b} {
		if res := s.Ingest(t, ten.Token, []servertest.CloudEvent{event("old-1", t0.Add(-time.Hour)), event("old-2", t0.Add(-time.Hour+7*time.Minute))}); res.Status != 200 {
			t.Fatalf("ingest: %d %s", res.Status, res.Body)
		}
	}
	// 40 days later tenant a has an invoice for a period ending 39 days ago; b none.
	clk.Advance(40 * 24 * time.Hour)
	now := clk.Now()
	a.Token, b.Token = s.TokenFor(t, a), s.TokenFor(t, b)
	owner := pgtest.Owner(t)
	if _, err := owner.Exec(ctx, `
		INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
		VALUES ($1, gen_random_uuid(), $2, $3, 'usd', 'free', '[]', 0, 0, 'open', $3, $3)`,
		a.ID, t0.Add(-30*24*time.Hour), t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ragged := usagePath("keep_tokens", t0.Add(-2*time.Hour+time.Minute), t0.Add(-time.Hour+time.Minute), "")
	aligned := usagePath("keep_tokens", t0.Add(-2*time.Hour).Truncate(metering.RollupGranule), t0.Truncate(metering.RollupGranule).Add(metering.RollupGranule), "")
	recent := usagePath("keep_tokens", now.Add(-24*time.Hour+time.Minute), now, "")
	peak := usagePath("keep_peak", t0.Add(-2*time.Hour), t0, "")
	if res := s.Get(t, a.Token, ragged); res.Status != 400 || !res.Problem(t).Field("from") {
		t.Errorf("a ragged range before the raw events' retention: %d %s, want 400 naming from", res.Status, res.Body)
	}
	if res := s.Get(t, a.Token, peak); res.Status != 400 || !res.Problem(t).Field("from") {
		t.Errorf("a max meter before the raw events' retention: %d %s, want 400 naming from", res.Status, res.Body)
	}
	for _, path := range []string{aligned, recent} {
		if res := s.Get(t, a.Token, path); res.Status != 200 {
			t.Errorf("%s: %d %s", path, res.Status, res.Body)
		}
	}
	var ans usageAnswer
	s.Get(t, a.Token, aligned).Decode(t, &ans)
	if len(ans.Data) != 1 || ans.Data[0].Value != "10" {
		t.Errorf("the aligned old range: %+v, want 10 from the rollups", ans.Data)
	}
	// b was never invoiced: its raw events stay and any range is exact.
	s.Get(t, b.Token, ragged).Decode(t, &ans)
	if len(ans.Data) != 1 || ans.Data[0].Value != "5" {
		t.Errorf("b's ragged old range: %+v, want 5", ans.Data)
	}

	n, err := (&metering.Reaper{DB: s.App.DB, Clock: clk}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := func(sql, tenant string) int {
		var n int
		if err := owner.QueryRow(ctx, sql, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// a's two raw events and both tenants' four dedupe keys.
	if n != 6 || count("SELECT count(*) FROM usage_events WHERE tenant_id = $1", a.ID) != 0 ||
		count("SELECT count(*) FROM usage_events WHERE tenant_id = $1", b.ID) != 2 ||
		count("SELECT count(*) FROM usage_dedupe WHERE tenant_id = $1", b.ID) != 0 {
		t.Fatalf("reaped %d rows; left a %d events, b %d events and %d keys", n,
			count("SELECT count(*) FROM usage_events WHERE tenant_id = $1", a.ID), count("SELECT count(*) FROM usage_events WHERE tenant_id = $1", b.ID),
			count("SELECT count(*) FROM usage_dedupe WHERE tenant_id = $1", b.ID))
	}
	// Rollups stay.
	s.Get(t, a.Token, aligned).Decode(t, &ans)
	if len(ans.Data) != 1 || ans.Data[0].Value != "10" {
		t.Errorf("after the reaper, the aligned old range: %+v, want 10", ans.Data)
	}
	// b's event sent again after its key left the window, same time: its raw event is still
	// kept, so it is still a duplicate, and counted once.
	res := s.Ingest(t, b.Token, event("old-1", t0.Add(-time.Hour)))
	wantAnswer(t, res, 0, 1)
	s.Get(t, b.Token, aligned).Decode(t, &ans)
	if len(ans.Data) != 1 || ans.Data[0].Value != "10" {
		t.Errorf("b after a resend past the window: %+v, want 10", ans.Data)
	}
}

// Each reaping function finds its batch through an index and deletes it by ctid, and a run
// deletes more than a batch: no step reads a whole table, however large it grows.
func TestUsageReapersUseIndexes(t *testing.T) {
	owner := pgtest.Owner(t)
	for fn, index := range map[string]string{
		"app.reap_usage_dedupe(timestamptz, int)": "usage_dedupe_received_idx",
		"app.reap_usage_events(timestamptz, int)": "usage_events_pkey",
	} {
		plan := pgtest.ExplainFunction(t, owner, fn)
		if !strings.Contains(plan, index) || !strings.Contains(plan, "Tid Scan") ||
			strings.Contains(plan, "Seq Scan on usage") || strings.Contains(plan, "Bitmap Heap Scan on usage") {
			t.Errorf("%s does not find its batch through %s and delete it by ctid:\n%s", fn, index, plan)
		}
	}
	s := servertest.New(t)
	a := s.Signup(t, "usage-reap-batches")
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := owner.Exec(ctx, `INSERT INTO usage_dedupe (tenant_id, key, received_at)
		SELECT $1, gen_random_uuid(), $2 FROM generate_series(1, 2500)`, a.ID, now.Add(-36*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, err := (&metering.Reaper{DB: s.App.DB, Clock: clock.NewFixed(now)}).Run(ctx)
	var left int
	if err == nil {
		err = owner.QueryRow(ctx, "SELECT count(*) FROM usage_dedupe WHERE tenant_id = $1", a.ID).Scan(&left)
	}
	if err != nil || n < 2500 || left != 0 {
		t.Fatalf("reaped %d, %d keys left (%v)", n, left, err)
	}
}
