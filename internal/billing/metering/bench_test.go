package metering_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// BenchmarkIngestion compares, in one run, (a) a raw pgx CopyFrom of the events into a table
// without indexes, (b) the production ingestion path called in-process, and (c) POST
// /v1/usage/events over HTTP with batches of 1000 from 2 and from 4 clients. Each part runs
// after a CHECKPOINT, three times; the median is reported, with the p99 per batch.
func BenchmarkIngestion(b *testing.B) {
	ctx := context.Background()
	s := servertest.New(b)
	s.PutMeter(b, "bench_tokens", map[string]any{"event_type": "bench", "aggregation": "sum", "value_property": "$.n", "group_by": map[string]string{"model": "$.model"}})
	ten := s.Signup(b, "bench-ingest")
	tenantID := uuid.MustParse(ten.ID)
	owner := pgtest.Owner(b)
	if _, err := owner.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_raw_events (tenant_id uuid, source text, id text, type text,
		subject text, time timestamptz, data jsonb, received_at timestamptz)`); err != nil {
		b.Fatal(err)
	}
	meters, err := s.App.Usage.Meters.List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const (
		batch   = 1000
		batches = 20
	)
	var seq atomic.Int64
	nextBatch := func() []servertest.CloudEvent {
		evs := make([]servertest.CloudEvent, batch)
		now := time.Now().UTC()
		for i := range evs {
			n := seq.Add(1)
			evs[i] = servertest.CloudEvent{SpecVersion: "1.0", ID: fmt.Sprint("b-", n), Source: "bench", Type: "bench",
				Time: now.Add(-time.Duration(n%3600) * time.Second).Format(time.RFC3339Nano),
				Data: map[string]any{"n": n % 100, "model": []string{"small", "large", "huge"}[n%3]}}
		}
		return evs
	}
	checkpoint := func() {
		if _, err := owner.Exec(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
	}

	// (a) raw COPY, as the owner, through a pool of its own.
	pool, err := pgxpool.New(ctx, pgtest.OwnerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	raw := func() result {
		return measure(b, 2, batches, func() error {
			evs := nextBatch()
			rows := make([][]any, len(evs))
			for i, e := range evs {
				data, _ := json.Marshal(e.Data)
				at, _ := time.Parse(time.RFC3339Nano, e.Time)
				rows[i] = []any{tenantID, e.Source, e.ID, e.Type, nil, at, data, time.Now()}
			}
			_, err := pool.CopyFrom(ctx, pgx.Identifier{"bench_raw_events"},
				[]string{"tenant_id", "source", "id", "type", "subject", "time", "data", "received_at"}, pgx.CopyFromRows(rows))
			return err
		})
	}
	// (b) the production path, in-process.
	inProcess := func() result {
		return measure(b, 2, batches, func() error {
			body, _ := json.Marshal(nextBatch())
			evs, err := metering.ParseEvents(body, meters, time.Now())
			if err != nil {
				return err
			}
			_, err = s.App.Usage.Ingest(ctx, tenantID, evs)
			return err
		})
	}
	// (c) over HTTP.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	overHTTP := func(clients int) func() result {
		return func() result {
			return measure(b, clients, batches, func() error {
				body, _ := json.Marshal(nextBatch())
				req, _ := http.NewRequest("POST", s.URL+"/v1/usage/events", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+ten.Token)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					return fmt.Errorf("POST /v1/usage/events: %d", res.StatusCode)
				}
				return nil
			})
		}
	}
	parts := []struct {
		name string
		run  func() result
	}{{"a_copy", raw}, {"b_inprocess", inProcess}, {"c_http2", overHTTP(2)}, {"c_http4", overHTTP(4)}}
	medians := map[string]result{}
	for range b.N {
		runs := map[string][]result{}
		for range 3 {
			for _, p := range parts {
				checkpoint()
				runs[p.name] = append(runs[p.name], p.run())
			}
		}
		for name, rs := range runs {
			slices.SortFunc(rs, func(x, y result) int { return int(x.rate - y.rate) })
			medians[name] = rs[1]
		}
	}
	b.ReportMetric(0, "ns/op")
	for name, r := range medians {
		b.ReportMetric(r.rate, name+"_events/s")
		b.ReportMetric(float64(r.p99.Milliseconds()), name+"_p99_ms/batch")
	}
	b.ReportMetric(medians["c_http2"].rate/medians["b_inprocess"].rate, "c2/b")
	b.ReportMetric(medians["c_http2"].rate/medians["a_copy"].rate, "c2/a")
}

type result struct {
	rate float64 // events per second
	p99  time.Duration
}

// measure runs batches calls of one batch of 1000 events each over workers goroutines.
func measure(b *testing.B, workers, batches int, one func() error) result {
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
		left atomic.Int64
	)
	left.Store(int64(batches))
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if err := one(); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lats = append(lats, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	if len(lats) == 0 {
		b.Fatal("no batch completed")
	}
	return result{rate: float64(len(lats)*1000) / elapsed.Seconds(), p99: lats[len(lats)*99/100]}
}
