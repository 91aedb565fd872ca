package purge_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// BenchmarkPurge1MUsageEvents purges a tenant with 1,000,000 usage events (and 10,000
// rollups) while another tenant keeps sending usage and reading its projects, and reports
// the purge's time, the slowest concurrent request (and the slowest in the 3 s of the same
// traffic before the purge), and the longest lock wait seen in
// pg_stat_activity (sampled every 5 ms) of any backend of the database. Run it with
// `make bench-lifecycle` (-benchtime=1x: one purge is the measure).
func BenchmarkPurge1MUsageEvents(b *testing.B) {
	const events = 1_000_000
	clk := clock.NewFixed(time.Now().UTC())
	s := servertest.NewAt(b, clk)
	s.MeteredPlan(b)
	owner := pgtest.Owner(b)
	ctx := context.Background()
	other := s.Signup(b, "bench-other")
	s.OnPlan(b, other, "metered")
	project := s.Create(b, other.Token, "/v1/projects", map[string]string{"name": "read me"})

	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := s.Signup(b, "bench-purge")
		for _, q := range []string{
			`INSERT INTO usage_events (tenant_id, source, id, type, subject, time, data, received_at)
			 SELECT $1, 'bench', 'e' || g, 'tokens', 'user-' || (g % 100), now() - g * interval '1 second', jsonb_build_object('n', g % 7), now()
			   FROM generate_series(1, ` + fmt.Sprint(events) + `) g`,
			`INSERT INTO usage_rollups (tenant_id, meter_key, bucket_start, value, events)
			 SELECT $1, 'tokens', date_trunc('hour', now()) - g * interval '15 minutes', 1, 1 FROM generate_series(1, 10000) g`,
			`UPDATE tenants SET status = 'pending_deletion', purge_after = now() - interval '1 day' WHERE id = $1`,
		} {
			if _, err := owner.Exec(ctx, q, a.ID); err != nil {
				b.Fatal(err)
			}
		}
		owner.Exec(ctx, "ANALYZE usage_events")

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var slowest, baseSlowest, lockWait atomic.Int64
		var requests atomic.Int64
		var purging atomic.Bool
		wg.Go(func() { // the other tenant's traffic
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				res, err := s.TryDo(servertest.Request{Method: "POST", Path: "/v1/usage/events", Token: other.Token,
					Body: []servertest.CloudEvent{servertest.TokensEvent(uuid.NewString(), clk.Now(), 1)}})
				if err != nil || res.Status >= 300 {
					b.Errorf("concurrent usage: %v %v", err, res)
					return
				}
				if res, err := s.TryDo(servertest.Request{Method: "GET", Path: "/v1/projects/" + project, Token: other.Token}); err != nil || res.Status != http.StatusOK {
					b.Errorf("concurrent read: %v %v", err, res)
					return
				}
				d := time.Since(start).Microseconds()
				into := &baseSlowest
				if purging.Load() {
					into = &slowest
					requests.Add(1)
				}
				for cur := into.Load(); d > cur && !into.CompareAndSwap(cur, d); cur = into.Load() {
				}
			}
		})
		wg.Go(func() { // lock waits, as pg_stat_activity shows them
			conn := pgtest.Owner(b)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				var us int64
				conn.QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start) * 1e6), 0)::bigint
					FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&us)
				for cur := lockWait.Load(); us > cur && !lockWait.CompareAndSwap(cur, us); cur = lockWait.Load() {
				}
			}
		})
		time.Sleep(3 * time.Second) // the same traffic without a purge, for comparison

		purging.Store(true)
		b.StartTimer()
		start := time.Now()
		n, err := s.App.Purger.Purge(ctx, uuid.MustParse(a.ID))
		took := time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil || n < events {
			b.Fatalf("purge: %d rows, %v", n, err)
		}
		b.ReportMetric(took.Seconds(), "purge-s")
		b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(slowest.Load())/1000, "slowest-concurrent-ms")
		b.ReportMetric(float64(baseSlowest.Load())/1000, "slowest-before-purge-ms")
		b.ReportMetric(float64(lockWait.Load())/1000, "longest-lock-wait-ms")
		b.ReportMetric(float64(requests.Load()), "concurrent-requests")
		b.StartTimer()
	}
}
