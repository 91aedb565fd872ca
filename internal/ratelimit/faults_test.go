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

// slack is what a decision may take beyond the timeout: 5 ms, and under the race detector
// the scheduling delay it adds (raceSlack).
const slack = 5*time.Millisecond + raceSlack

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

	// decide times one decision against the bound.
	decide := func(l *ratelimit.Limiter, lim ratelimit.Limit) ratelimit.Decision {
		t.Helper()
		start := time.Now()
		d, err := l.Allow(ctx, lim)
		if took := time.Since(start); took > timeout+slack {
			t.Errorf("a decision took %v, want at most %v", took, timeout+slack)
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
