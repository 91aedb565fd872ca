package ratelimit_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/ratelimit"
)

// flood sends lim from workers goroutines per replica, a request every pause each, for d;
// it answers when each admitted request was decided, after start.
func flood(t *testing.T, replicas []*ratelimit.Limiter, lim ratelimit.Limit, workers int, pause, d time.Duration) (admitted []time.Duration, sent int64, elapsed time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for _, l := range replicas {
		for range workers {
			wg.Go(func() {
				var mine []time.Duration
				for time.Now().Before(stop) {
					n.Add(1)
					dec, err := l.Allow(context.Background(), lim)
					if err != nil || dec.Degraded {
						t.Errorf("%+v, %v", dec, err)
						return
					}
					if dec.Allowed {
						mine = append(mine, time.Since(start))
					}
					time.Sleep(pause)
				}
				mu.Lock()
				admitted = append(admitted, mine...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.Sort(admitted)
	return admitted, n.Load(), time.Since(start)
}

// A hot tenant on two replicas, leasing: from a full bucket, never more than the burst plus
// the rate times the time, and over any window W at most the burst plus the rate times
// W and the lease's life (a unit is admitted within its lease of being spent).
func TestLeaseNeverAdmitsMoreThanTheLimit(t *testing.T) {
	prefix := newPrefix(t)
	a, regA := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	b, _ := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	const rate, burst = 4000, 400
	lim := tenantLimit(rate, burst)

	admitted, sent, elapsed := flood(t, []*ratelimit.Limiter{a, b}, lim, 4, time.Millisecond, 1500*time.Millisecond)
	most := burst + rate*elapsed.Seconds()
	t.Logf("%d sent, %d admitted in %v (at most %.0f), %v from leases on a", sent, len(admitted), elapsed, most,
		metric(t, regA, "ratelimit_lease_admitted_total"))
	if float64(len(admitted)) > most {
		t.Fatalf("admitted %d, more than %.0f", len(admitted), most)
	}
	if want := 0.8 * min(most, float64(sent)); float64(len(admitted)) < want {
		t.Fatalf("admitted %d, want at least %.0f: leases strand too much", len(admitted), want)
	}
	const window, life = 300 * time.Millisecond, 100 * time.Millisecond
	for i, at := range admitted {
		j, _ := slices.BinarySearch(admitted, at+window)
		if limit := burst + rate*(window+life).Seconds(); float64(j-i) > limit {
			t.Fatalf("%d admitted in the %v from %v, more than %.0f", j-i, window, at, limit)
		}
	}
	if metric(t, regA, "ratelimit_lease_admitted_total") == 0 {
		t.Fatal("no request admitted from a lease")
	}
}

// Near exhaustion a lease is one request: a burst with no refill, flooded from two replicas
// that lease, admits exactly the burst, and none is stranded in a lease.
func TestLeaseIsExactNearExhaustion(t *testing.T) {
	prefix := newPrefix(t)
	client := newClient(t, redisAddr)
	calls := countCalls(client)
	a, reg := newLimiter(t, client, prefix, ratelimit.Options{})
	b, _ := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	const burst = 2000
	lim := tenantLimit(perHour(1), burst)

	admitted, sent, _ := flood(t, []*ratelimit.Limiter{a, b}, lim, 8, 100*time.Microsecond, 1500*time.Millisecond)
	leased := metric(t, reg, "ratelimit_lease_admitted_total")
	t.Logf("%d sent, %d admitted; replica a: %v from leases, %d Redis calls", sent, len(admitted), leased, calls.n.Load())
	if len(admitted) != burst {
		t.Fatalf("admitted %d, want exactly %d", len(admitted), burst)
	}
	if leased == 0 {
		t.Fatal("no request admitted from a lease")
	}
}

// A tenant far below its limit pays Redis a call per many requests once hot; cold (a few
// requests), it pays one per request as before.
func TestHotTenantLeases(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, redisAddr)
	calls := countCalls(client)
	l, reg := newLimiter(t, client, newPrefix(t), ratelimit.Options{})
	lim := tenantLimit(1e6, 1e6)
	lim.MaxConcurrent = 100

	l.Allow(ctx, tenantLimit(1, 1)) // Redis has the script
	before := calls.n.Load()
	for range 5 {
		d, _ := l.Allow(ctx, lim)
		d.Release(ctx)
	}
	if n := calls.n.Load() - before; n != 5 {
		t.Fatalf("a cold tenant: %d Redis calls for 5 requests, want 5", n)
	}

	var admitted atomic.Int64
	var wg sync.WaitGroup
	before = calls.n.Load()
	stop := time.Now().Add(time.Second)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				d, err := l.Allow(ctx, lim)
				if err != nil || !d.Allowed {
					t.Errorf("%+v, %v", d, err)
					return
				}
				admitted.Add(1)
				d.Release(ctx)
			}
		})
	}
	wg.Wait()
	n := calls.n.Load() - before
	t.Logf("%d admitted, %d Redis calls, %v from leases", admitted.Load(), n, metric(t, reg, "ratelimit_lease_admitted_total"))
	if n > admitted.Load()/4 {
		t.Fatalf("%d Redis calls for %d requests of a hot tenant, want at most a quarter", n, admitted.Load())
	}
}
