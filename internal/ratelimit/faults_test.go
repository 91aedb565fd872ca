package ratelimit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/saasbase/saasbase/internal/ratelimit"
)

// decisionBound is what a decision may take while Redis is stalled or cut before the test
// calls it blocked: far above the limiter's 50 ms timeout, so that a busy two-core machine
// cannot fail it, and far below the 1 s stall and the seconds a dial can hang, so that a
// decision that waited for Redis does. How long decisions take is measured, not asserted:
// BenchmarkDecisionRedisStalled.
const decisionBound = 500 * time.Millisecond

// Redis stalled (every answer delayed a second) or cut (the proxy disabled): every decision
// answers within the timeout, by the failure mode — open decides in the replica, closed
// denies — and the circuit opens, so Redis is no longer called; once Redis is back, shared
// decisions resume by themselves. Both kinds of client are tried: one that stops at the
// context's deadline, and one that does not (the limiter then guards the call itself).
func TestRedisFaults(t *testing.T) {
	faults := map[string]func(testing.TB, *toxiproxy.Proxy) (restore func()){
		"stalled": func(tb testing.TB, p *toxiproxy.Proxy) func() { return stall(tb, p, time.Second) },
		"cut": func(tb testing.TB, p *toxiproxy.Proxy) func() {
			p.Stop()
			return func() {
				if err := p.Start(); err != nil {
					tb.Fatal(err)
				}
			}
		},
	}
	for _, name := range []string{"stalled", "cut"} {
		for _, ctxTimeout := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/ContextTimeoutEnabled=%t", name, ctxTimeout), func(t *testing.T) {
				testFault(t, faults[name], ctxTimeout)
			})
		}
	}
}

func testFault(t *testing.T, fault func(testing.TB, *toxiproxy.Proxy) func(), ctxTimeout bool) {
	ctx := context.Background()
	proxy := newProxy(t)
	prefix := newPrefix(t)
	const timeout = 50 * time.Millisecond
	opts := ratelimit.Options{Timeout: timeout, BreakerThreshold: 3, BreakerCooldown: 500 * time.Millisecond}
	replica := func() (*ratelimit.Limiter, *counter, *prometheus.Registry) {
		client := newClient(t, proxy.Listen, func(o *redis.Options) { o.ContextTimeoutEnabled = ctxTimeout })
		calls := countCalls(client)
		l, reg := newLimiter(t, client, prefix, opts)
		return l, calls, reg
	}
	a, calls, reg := replica()
	b, _, _ := replica()
	circuitOpen := func() float64 { return metric(t, reg, "ratelimit_circuit_open") }

	// decide makes one decision and checks that it did not wait for Redis.
	decide := func(l *ratelimit.Limiter, lim ratelimit.Limit) ratelimit.Decision {
		t.Helper()
		start := time.Now()
		d, err := l.Allow(ctx, lim)
		if took := time.Since(start); took > decisionBound {
			t.Errorf("a decision took %v: it waited for Redis (bound %v, timeout %v)", took, decisionBound, timeout)
		}
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decide(a, tenantLimit(1, 1)); d.Degraded || !d.Allowed {
		t.Fatalf("healthy Redis: %+v", d)
	}

	restore := fault(t, proxy)

	// Fail open: each replica enforces the whole limit on its own, so the tenant gets at most
	// its burst from each.
	open := tenantLimit(perHour(5), 5)
	for _, l := range []*ratelimit.Limiter{a, b} {
		admitted := 0
		for range 20 {
			d := decide(l, open)
			if !d.Degraded {
				t.Fatal("a decision without Redis is not marked degraded")
			}
			if d.Allowed {
				admitted++
			}
		}
		if admitted != 5 {
			t.Fatalf("a replica admitted %d of 20 without Redis, want its burst, 5", admitted)
		}
	}
	// Fail closed: denied.
	closed := tenantLimit(1000, 1000)
	closed.Failure = ratelimit.FailClosed
	for range 5 {
		if d := decide(a, closed); d.Allowed || !d.Degraded || d.Policy != "tenant" || d.RetryAfter < time.Second {
			t.Fatalf("fail closed: %+v, want denied, degraded", d)
		}
	}
	// The circuit is open: Redis is left alone.
	if !a.CircuitOpen() || circuitOpen() != 1 {
		t.Fatal("the circuit did not open")
	}
	before := calls.n.Load()
	for range 100 {
		decide(a, open)
	}
	if n := calls.n.Load() - before; n > 2 {
		t.Fatalf("%d Redis calls in 100 decisions with the circuit open", n)
	}

	for _, reason := range []string{"circuit_open", "timeout|error"} {
		var n float64
		for _, r := range strings.Split(reason, "|") {
			n += metric(t, reg, "ratelimit_degraded_total", "reason", r)
		}
		if n == 0 {
			t.Errorf("no degraded decision counted for %s", reason)
		}
	}

	restore()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d := decide(a, tenantLimit(1, 1)); !d.Degraded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shared decisions did not resume within 5s of Redis coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.CircuitOpen() || circuitOpen() != 0 {
		t.Fatal("the circuit is still open")
	}
	shared := tenantLimit(perHour(1), 1)
	decide(a, shared)
	for {
		d := decide(b, shared)
		if !d.Degraded {
			if d.Allowed {
				t.Fatal("replica b allowed what replica a had spent: limiting is not shared")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica b did not resume within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkDecisionRedisStalled measures what a decision costs while Redis answers nothing
// for a second and the circuit stays closed (a threshold never reached), so every decision
// goes to Redis and falls back at the limiter's timeout: ns/op should sit just above
// the 50 ms timeout, and max-ms says how far the machine's scheduling stretched one.
func BenchmarkDecisionRedisStalled(b *testing.B) {
	for _, ctxTimeout := range []bool{true, false} {
		b.Run(fmt.Sprintf("ContextTimeoutEnabled=%t", ctxTimeout), func(b *testing.B) {
			proxy := newProxy(b)
			client := newClient(b, proxy.Listen, func(o *redis.Options) { o.ContextTimeoutEnabled = ctxTimeout })
			l, _ := newLimiter(b, client, newPrefix(b), ratelimit.Options{Timeout: 50 * time.Millisecond, BreakerThreshold: 1 << 30})
			defer stall(b, proxy, time.Second)()
			lim := tenantLimit(1000, 1000)
			var worst time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := l.Allow(context.Background(), lim); err != nil {
					b.Fatal(err)
				}
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
		})
	}
}
