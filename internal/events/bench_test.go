package events_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// BenchmarkPipeline measures events per second from the outbox insert to the consumer's
// effect, with 50 tenants writing while the relay and one consumer run, on each transport;
// and the outbox lag (occurrence to publication) at the 99th percentile under that load.
// With the in-process transport an event counts as published once the consumers have
// settled it, so its lag includes the consumer. It also reports the CPU spent per event by
// this process and by PostgreSQL's backends of the test database, which other work on a
// shared machine changes less than the rate.
func BenchmarkPipeline(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			h, consumer, typ := startPipeline(b, tr.new, "bench")

			tenants := min(50, b.N)
			cpu := h.startCPU()
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
			h.waitApplied(consumer, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(h.lagP99(typ), "lag-p99-ms")
		})
	}
}

// BenchmarkPipelineLag measures the outbox lag at the 99th percentile at a steady 1,000
// events per second: 50 tenants, each writing an event in a transaction of its own every
// 50 ms, b.N events in all.
func BenchmarkPipelineLag(b *testing.B) {
	const tenants, every = 50, 50 * time.Millisecond // 1,000 events/s
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			h, consumer, typ := startPipeline(b, tr.new, "benchlag")

			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range tenants {
				n := b.N / tenants
				if i < b.N%tenants {
					n++
				}
				tenant := uuid.New()
				wg.Go(func() {
					// Tenants start spread over the interval, not all at once.
					time.Sleep(every * time.Duration(i) / tenants)
					tick := time.NewTicker(every)
					defer tick.Stop()
					for j := range n {
						h.appendEvents(tenant, typ, j, 1, 1)
						<-tick.C
					}
				})
			}
			wg.Wait()
			h.waitApplied(consumer, b.N)
			b.StopTimer()
			b.ReportMetric(h.lagP99(typ), "lag-p99-ms")
		})
	}
}

// startPipeline starts a relay (every 5 ms when idle) and one consumer, named from prefix,
// whose handler records each event in test_effects, on the transport newTransport makes;
// it answers the consumer's name and the type of the events it is to apply. The handler
// writes its row as the webhook fan-out writes its deliveries, with the commit
// (postgres.Later): what is measured is the pipeline, not a handler's round trips.
//
// The pipeline is warmed up first, as a running service's is: 50 tenants write two events
// each and wait for them to be applied, which opens the pool's connections and prepares
// every statement on them (cold, the first rounds took 100–300 ms, and their backlog
// dominated a run's 99th percentile). Their effects are then cleared.
func startPipeline(b *testing.B, newTransport func(testing.TB, *events.Consumers) events.Transport, prefix string) (h *harness, consumer, typ string) {
	h = newHarness(b)
	consumer = name(prefix)
	typ = "bench." + consumer
	cs := h.consumers(events.Consumer{Name: consumer, Handle: func(ctx context.Context, tx pgx.Tx, e events.Event) error {
		args, err := effectArgs(consumer, e)
		if err != nil {
			return err
		}
		return postgres.Later(ctx, tx, insertEffect, args...)
	}})
	transport := newTransport(b, cs)
	startConsumers(b, cs, transport)
	relay := h.relay(transport)
	relay.Interval = 5 * time.Millisecond
	run(b, relay.Run)

	const warm = 50
	var wg sync.WaitGroup
	for range warm {
		wg.Go(func() { h.appendEvents(uuid.New(), "warmup."+consumer, 0, 2, 1) })
	}
	wg.Wait()
	h.waitApplied(consumer, 2*warm)
	if _, err := h.owner.Exec(context.Background(), "DELETE FROM test_effects WHERE consumer = $1", consumer); err != nil {
		b.Fatal(err)
	}
	return h, consumer, typ
}

// waitApplied waits until consumer applied n events, looking every 20 ms: each look reads
// the effects table, work that must not crowd out what is measured.
func (h *harness) waitApplied(consumer string, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for h.count("SELECT count(*) FROM test_effects WHERE consumer = $1", consumer) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not every event applied after 5 minutes", consumer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lagP99 answers the 99th percentile of the time from occurrence to publication of the
// events of typ, in milliseconds.
func (h *harness) lagP99(typ string) float64 {
	var p99 float64
	err := h.owner.QueryRow(context.Background(), `
		SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - occurred_at)), 0) * 1000
		  FROM outbox WHERE type = $1`, typ).Scan(&p99)
	if err != nil {
		h.t.Fatal(err)
	}
	return p99
}

// cpuMeter measures the CPU time of this process and of the test database's backends.
type cpuMeter struct {
	h     *harness
	self  time.Duration
	pg    map[int]time.Duration
	valid bool
}

func (h *harness) startCPU() *cpuMeter {
	m := &cpuMeter{h: h, self: selfCPU()}
	m.pg, m.valid = h.backendCPU()
	return m
}

// report adds the CPU spent per event since startCPU: µs in this process (go-cpu-µs/event)
// and in PostgreSQL (pg-cpu-µs/event; not reported if the backends' /proc is not readable).
func (m *cpuMeter) report(b *testing.B, events int) {
	b.ReportMetric(float64((selfCPU()-m.self).Microseconds())/float64(events), "go-cpu-µs/event")
	end, ok := m.h.backendCPU()
	if !ok || !m.valid {
		return
	}
	var pg time.Duration
	for pid, t := range end {
		pg += t - m.pg[pid]
	}
	b.ReportMetric(float64(pg.Microseconds())/float64(events), "pg-cpu-µs/event")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU answers the CPU time of each backend of the test database but the harness's
// own, by pid, from /proc: only where PostgreSQL runs on this machine.
func (h *harness) backendCPU() (map[int]time.Duration, bool) {
	rows, err := h.owner.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		h.t.Fatal(err)
	}
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			h.t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if rows.Err() != nil {
		h.t.Fatal(rows.Err())
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return nil, false
		}
		// Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			return nil, false
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return out, true
}
