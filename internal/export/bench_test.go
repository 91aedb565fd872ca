package export_test

import (
	"context"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// BenchmarkExport measures an export of a tenant with 200,000 usage events, from claim to
// stored archive, in rows per second (`make bench-lifecycle`).
func BenchmarkExport(b *testing.B) {
	const events = 200_000
	s := servertest.New(b)
	owner := pgtest.Owner(b)
	ctx := context.Background()
	a := s.Signup(b, "bench-export")
	addUsage(b, owner, a.ID, "bench", events)
	owner.Exec(ctx, "ANALYZE usage_events")
	b.ResetTimer()
	var rows int64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pendingExport(b, owner, a.ID, time.Now())
		b.StartTimer()
		if _, err := s.App.Exports.Run(ctx); err != nil {
			b.Fatal(err)
		}
		rows += events
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}
