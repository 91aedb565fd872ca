package metering_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// usageMeters defines a sum meter grouped by model and a count meter on the same events.
func usageMeters(t *testing.T, s *servertest.Server, typ string) {
	s.PutMeter(t, typ+"_tokens", map[string]any{"event_type": typ, "aggregation": "sum", "value_property": "$.tokens", "group_by": map[string]string{"model": "$.model"}})
	s.PutMeter(t, typ+"_calls", map[string]any{"event_type": typ, "aggregation": "count"})
}

// Test 1: replaying 20% duplicates, and resending everything after a request killed
// mid-flight, leaves events and rollups exactly equal to the unique input, and the rollups
// equal a recomputation from the raw events (both EXCEPT directions empty).
func TestIngestionIsExactlyOnce(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "usage-once")
	usageMeters(t, s, "llm")
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now().UTC().Add(-3 * time.Hour)
	var unique []servertest.CloudEvent
	for i := range 3000 {
		unique = append(unique, servertest.CloudEvent{
			SpecVersion: "1.0", ID: fmt.Sprintf("evt-%d", i), Source: "test/" + []string{"a", "b"}[i%2], Type: "llm",
			Time: start.Add(time.Duration(rng.IntN(3*3600)) * time.Second).Format(time.RFC3339Nano),
			Data: map[string]any{"tokens": json.Number(fmt.Sprintf("%d.%02d", rng.IntN(1000), rng.IntN(100))), "model": []string{"small", "large"}[rng.IntN(2)]},
		})
	}
	// Batches of 500 with 20% of each drawn again from what was already sent.
	var sent []servertest.CloudEvent
	for i := 0; i < len(unique); i += 400 {
		batch := append([]servertest.CloudEvent{}, unique[i:min(i+400, len(unique))]...)
		for range 100 {
			if len(sent) > 0 {
				batch = append(batch, sent[rng.IntN(len(sent))])
			}
		}
		sent = append(sent, unique[i:min(i+400, len(unique))]...)
		res := s.Ingest(t, a.Token, batch)
		if res.Status != 200 {
			t.Fatalf("batch %d: %d %s", i, res.Status, res.Body)
		}
	}
	// A request killed mid-flight: it may or may not have committed.
	ctx, cancel := context.WithCancel(context.Background())
	body, _ := json.Marshal(unique[:1000])
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/v1/usage/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.Token)
	go func() { time.Sleep(2 * time.Millisecond); cancel() }()
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
	// Resend everything.
	for i := 0; i < len(unique); i += 1000 {
		res := s.Ingest(t, a.Token, unique[i:min(i+1000, len(unique))])
		var r struct{ Accepted, Duplicates int }
		res.Decode(t, &r)
		if res.Status != 200 || r.Accepted != 0 || r.Duplicates != 1000 {
			t.Fatalf("resend %d: %d %+v, want all duplicates", i, res.Status, r)
		}
	}

	conn := pgtest.Owner(t)
	var events int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM usage_events WHERE tenant_id = $1", a.ID).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != len(unique) {
		t.Fatalf("%d events stored, want %d", events, len(unique))
	}
	// Rollups against a recomputation from the raw events, both directions.
	const recompute = `
		SELECT 'llm_tokens' AS meter_key, date_bin('15 minutes', time, 'epoch') AS bucket_start,
		       jsonb_build_object('model', data->>'model') AS group_key,
		       sum((data->>'tokens')::numeric) AS value, count(*) AS events
		  FROM usage_events WHERE tenant_id = $1 AND type = 'llm' GROUP BY 1, 2, 3
		UNION ALL
		SELECT 'llm_calls', date_bin('15 minutes', time, 'epoch'), '{}'::jsonb, count(*), count(*)
		  FROM usage_events WHERE tenant_id = $1 AND type = 'llm' GROUP BY 1, 2, 3`
	const rollups = `SELECT meter_key, bucket_start, group_key, value, events FROM usage_rollups WHERE tenant_id = $1 AND meter_key LIKE 'llm_%'`
	for _, q := range []string{"(" + rollups + ") EXCEPT (" + recompute + ")", "(" + recompute + ") EXCEPT (" + rollups + ")"} {
		var diff int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM ("+q+") d", a.ID).Scan(&diff); err != nil {
			t.Fatal(err)
		}
		if diff != 0 {
			t.Fatalf("%d rows differ between the rollups and the raw events", diff)
		}
	}
	// And the total against the input, computed here.
	var want float64
	for _, e := range unique {
		f, _ := e.Data["tokens"].(json.Number).Float64()
		want += f
	}
	var got float64
	if err := conn.QueryRow(context.Background(), "SELECT sum(value)::float8 FROM usage_rollups WHERE tenant_id = $1 AND meter_key = 'llm_tokens'", a.ID).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if d := got - want; d > 0.001 || d < -0.001 {
		t.Fatalf("rolled-up tokens %.2f, input %.2f", got, want)
	}
}

// Test 2: one invalid event in a batch of 1000 is a 400 naming its index; nothing is stored.
func TestOneInvalidEventStoresNothing(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "usage-invalid")
	usageMeters(t, s, "gpu")
	batch := make([]servertest.CloudEvent, 1000)
	for i := range batch {
		batch[i] = servertest.CloudEvent{SpecVersion: "1.0", ID: fmt.Sprint(i), Source: "s", Type: "gpu", Data: map[string]any{"tokens": 1, "model": "m"}}
	}
	batch[617].Data = map[string]any{"tokens": "many", "model": "m"}
	res := s.Ingest(t, a.Token, batch)
	p := res.Problem(t)
	if res.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Index == nil || *p.Errors[0].Index != 617 || p.Errors[0].Field != "data.tokens" {
		t.Fatalf("%d %s, want one error at index 617 naming data.tokens", res.Status, res.Body)
	}
	var n int
	if err := pgtest.Owner(t).QueryRow(context.Background(), "SELECT count(*) FROM usage_events WHERE tenant_id = $1", a.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d events stored after a refused batch", n)
	}
	// Other problems, each named.
	for name, ev := range map[string]map[string]any{
		"specversion": {"specversion": "0.3", "id": "x", "source": "s", "type": "gpu", "data": map[string]any{"tokens": 1}},
		"id":          {"specversion": "1.0", "source": "s", "type": "gpu", "data": map[string]any{"tokens": 1}},
		"time":        {"specversion": "1.0", "id": "x", "source": "s", "type": "gpu", "time": time.Now().Add(time.Hour).Format(time.RFC3339), "data": map[string]any{"tokens": 1}},
	} {
		res := s.Ingest(t, a.Token, ev)
		if p := res.Problem(t); res.Status != 400 || !p.Field(name) {
			t.Errorf("bad %s: %d %s", name, res.Status, res.Body)
		}
	}
	// Extension attributes are allowed, and numeric strings count.
	res = s.Ingest(t, a.Token, map[string]any{"specversion": "1.0", "id": "ext", "source": "s", "type": "gpu", "tenantregion": "eu", "data": map[string]any{"tokens": "2.5", "model": "m"}})
	if res.Status != 200 {
		t.Fatalf("event with an extension: %d %s", res.Status, res.Body)
	}
}

// Test 3 (usage side): a day in Asia/Kolkata starts at 18:30 UTC the day before, and an event
// at end - 1µs of a window is in it while one at end is in the next.
func TestUsageWindowsInTenantZone(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "usage-tz")
	s.PutMeter(t, "req_count", map[string]any{"event_type": "req", "aggregation": "count"})
	s.PutMeter(t, "req_peak", map[string]any{"event_type": "req", "aggregation": "max", "value_property": "$.n"})
	now := time.Now().UTC()
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	today := time.Date(now.In(kolkata).Year(), now.In(kolkata).Month(), now.In(kolkata).Day(), 0, 0, 0, 0, kolkata).AddDate(0, 0, -1)
	boundary := today.AddDate(0, 0, 1) // a local midnight: 18:30 UTC
	if boundary.UTC().Hour() != 18 || boundary.UTC().Minute() != 30 {
		t.Fatalf("Kolkata midnight is %s UTC", boundary.UTC())
	}
	evs := []servertest.CloudEvent{
		{SpecVersion: "1.0", ID: "before", Source: "s", Type: "req", Time: boundary.Add(-time.Microsecond).Format(time.RFC3339Nano), Data: map[string]any{"n": 7}},
		{SpecVersion: "1.0", ID: "at", Source: "s", Type: "req", Time: boundary.Format(time.RFC3339Nano), Data: map[string]any{"n": 3}},
	}
	if res := s.Ingest(t, a.Token, evs); res.Status != 200 {
		t.Fatalf("ingest: %d %s", res.Status, res.Body)
	}
	for _, meter := range []string{"req_count", "req_peak"} {
		path := fmt.Sprintf("/v1/meters/%s/usage?from=%s&to=%s&window=day&tz=Asia/Kolkata", meter,
			today.UTC().Format(time.RFC3339), today.AddDate(0, 0, 2).UTC().Format(time.RFC3339))
		res := s.Do(t, servertest.Request{Method: "GET", Path: path, Token: a.Token})
		var rep struct {
			Data []struct {
				WindowStart time.Time `json:"window_start"`
				Value       float64
			}
		}
		res.Decode(t, &rep)
		if res.Status != 200 || len(rep.Data) != 2 {
			t.Fatalf("%s: %d %s", meter, res.Status, res.Body)
		}
		if !rep.Data[0].WindowStart.Equal(today) || !rep.Data[1].WindowStart.Equal(boundary) {
			t.Fatalf("%s windows start at %s and %s, want %s and %s", meter, rep.Data[0].WindowStart, rep.Data[1].WindowStart, today.UTC(), boundary.UTC())
		}
		want := map[string][2]float64{"req_count": {1, 1}, "req_peak": {7, 3}}[meter]
		if rep.Data[0].Value != want[0] || rep.Data[1].Value != want[1] {
			t.Fatalf("%s values %v %v, want %v", meter, rep.Data[0].Value, rep.Data[1].Value, want)
		}
	}
}
