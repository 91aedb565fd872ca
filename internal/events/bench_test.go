package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkPipeline measures events per second from the outbox insert to the consumer's
// effect, with 50 tenants writing while the relay and one consumer run, on each transport;
// and the outbox lag (occurrence to publication) at the 99th percentile under that load.
// With the in-process transport an event counts as published once the consumers have
// settled it, so its lag includes the consumer.
func BenchmarkPipeline(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			h := newHarness(b)
			consumer := name("bench")
			typ := "bench." + consumer
			cs := h.consumers(effectConsumer(consumer))
			transport := tr.new(b, cs)
			startConsumers(b, cs, transport)
			relay := h.relay(transport)
			relay.Interval = 5 * time.Millisecond
			run(b, relay.Run)

			tenants := min(50, b.N)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range tenants {
				n := b.N / tenants
				if i < b.N%tenants {
					n++
				}
				tenant := uuid.New()
				wg.Go(func() { h.appendEvents(tenant, typ, 0, n, 10) })
			}
			wg.Wait()
			waitFor(b, 5*time.Minute, "every event applied", func() bool {
				return h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", consumer) >= b.N
			})
			elapsed := time.Since(start)
			b.StopTimer()

			var p99 float64
			err := h.owner.QueryRow(context.Background(), `
				SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - occurred_at)), 0) * 1000
				  FROM outbox WHERE type = $1`, typ).Scan(&p99)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(p99, "lag-p99-ms")
		})
	}
}
