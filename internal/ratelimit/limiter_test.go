package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/ratelimit"
)

// A burst of N with a refill of N an hour, raced by 64 clients over four replicas (each its
// own connection pool; two send their own calls, two pipeline them all) sending 10N
// requests: the script admits N, plus whatever refills during the test.
func TestAccuracyUnderContention(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		for _, cache := range []bool{true, false} {
			t.Run(fmt.Sprintf("N=%d/deny_cache=%t", n, cache), func(t *testing.T) {
				prefix := newPrefix(t)
				opts := ratelimit.Options{}
				if !cache {
					opts.DenyCache = -1
				}
				replicas := make([]*ratelimit.Limiter, 4)
				regs := make([]*prometheus.Registry, len(replicas))
				for i := range replicas {
					direct := func(o *redis.Options) { o.ContextTimeoutEnabled = i%2 == 0 }
					replicas[i], regs[i] = newLimiter(t, newClient(t, redisAddr, direct), prefix, opts)
				}
				lim := tenantLimit(perHour(n), n)

				var sent, admitted atomic.Int64
				var wg sync.WaitGroup
				for g := range 64 {
					wg.Go(func() {
						l := replicas[g%len(replicas)]
						for sent.Add(1) <= int64(10*n) {
							d, err := l.Allow(context.Background(), lim)
							if err != nil {
								t.Error(err)
								return
							}
							if d.Degraded {
								t.Error("degraded decision against a healthy Redis")
							}
							if d.Allowed {
								admitted.Add(1)
							}
						}
					})
				}
				wg.Wait()
				// Units a replica's lease spent in Redis and could not admit within their TTL
				// (its clients starved of the CPU) are lost, not refunded: they count as spent.
				var lost int64
				for _, reg := range regs {
					lost += int64(metric(t, reg, "ratelimit_lease_units_expired_total"))
				}
				if got := admitted.Load(); got+lost < int64(n) || got > int64(n)+2 {
					t.Fatalf("admitted %d of %d requests (%d leased units expired), want %d to %d", got, 10*n, lost, n, n+2)
				}
			})
		}
	}
}

// 100 a second with a burst of 100, flooded for ten seconds: the burst plus the rate times
// the time, within 1%.
func TestSustainedRate(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ten seconds")
	}
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	const rate, burst = 100, 100
	lim := tenantLimit(rate, burst)

	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(10 * time.Second)
	var last atomic.Int64 // ns after start of the last decision
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				d, err := l.Allow(context.Background(), lim)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
				last.Store(int64(time.Since(start)))
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Duration(last.Load())
	want := burst + rate*elapsed.Seconds()
	if got := float64(admitted.Load()); got < want*0.99 || got > want*1.01 {
		t.Fatalf("admitted %.0f in %v, want %.0f ± 1%%", got, elapsed, want)
	}
}

// Denied by the key's limit, a request spends nothing from the tenant's, and the other way
// round.
func TestDenialSpendsFromNoLimit(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{DenyCache: -1})

	t.Run("denied by the key", func(t *testing.T) {
		tenant := tenantLimit(perHour(10), 10)
		key := ratelimit.Limit{Scope: tenant.Scope, Policy: "key", ID: "k1", Rate: perHour(2), Burst: 2}
		for i := range 2 {
			if d, _ := l.Allow(ctx, tenant, key); !d.Allowed {
				t.Fatalf("request %d denied by %s", i+1, d.Policy)
			}
		}
		for range 5 {
			d, err := l.Allow(ctx, tenant, key)
			if err != nil || d.Allowed || d.Policy != "key" {
				t.Fatalf("third request: %+v, %v; want denied by key", d, err)
			}
		}
		d, _ := l.Allow(ctx, tenant)
		if !d.Allowed || d.Remaining != 10-2-1 {
			t.Fatalf("tenant after the key's denials: allowed %t, remaining %d; want allowed, 7", d.Allowed, d.Remaining)
		}
	})
	t.Run("denied by the tenant", func(t *testing.T) {
		tenant := tenantLimit(perHour(3), 3)
		key := ratelimit.Limit{Scope: tenant.Scope, Policy: "key", ID: "k1", Rate: perHour(5), Burst: 5}
		for range 3 {
			l.Allow(ctx, tenant, key)
		}
		if d, _ := l.Allow(ctx, tenant, key); d.Allowed || d.Policy != "tenant" {
			t.Fatalf("fourth request: %+v; want denied by tenant", d)
		}
		d, _ := l.Allow(ctx, key)
		if !d.Allowed || d.Remaining != 5-3-1 {
			t.Fatalf("key after the tenant's denial: allowed %t, remaining %d; want allowed, 1", d.Allowed, d.Remaining)
		}
	})
}

// The most restrictive limit is the one reported; a denial names the limit that makes the
// client wait the longest.
func TestDecisionNamesTheBindingLimit(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	tenant := tenantLimit(1, 10)
	key := ratelimit.Limit{Scope: tenant.Scope, Policy: "key", ID: "k", Rate: 0.1, Burst: 2}
	d, _ := l.Allow(ctx, tenant, key)
	if d.Policy != "key" || d.Remaining != 1 {
		t.Fatalf("got %s r=%d, want key r=1", d.Policy, d.Remaining)
	}
	l.Allow(ctx, tenant, key)
	d, _ = l.Allow(ctx, tenant, key)
	if d.Allowed || d.Policy != "key" || d.RetryAfter < 9*time.Second || d.RetryAfter > 10*time.Second {
		t.Fatalf("got %+v, want denied by key, retry after about 10s", d)
	}
}

// Remaining counts exactly, from a fresh bucket to an empty one.
func TestRemainingIsExact(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	for _, burst := range []int{1, 2, 7, 100} {
		lim := tenantLimit(perHour(1), burst)
		for i := 1; i <= burst; i++ {
			d, _ := l.Allow(ctx, lim)
			if !d.Allowed || d.Remaining != int64(burst-i) {
				t.Fatalf("burst %d, request %d: allowed %t remaining %d, want true %d", burst, i, d.Allowed, d.Remaining, burst-i)
			}
		}
		if d, _ := l.Allow(ctx, lim); d.Allowed || d.Remaining != 0 {
			t.Fatalf("burst %d, request %d: allowed %t remaining %d, want denied, 0", burst, burst+1, d.Allowed, d.Remaining)
		}
	}
	// A cost spends that many at once.
	lim := tenantLimit(perHour(1), 10)
	lim.Cost = 4
	for _, want := range []int64{6, 2} {
		if d, _ := l.Allow(ctx, lim); !d.Allowed || d.Remaining != want {
			t.Fatalf("cost 4: allowed %t remaining %d, want %d", d.Allowed, d.Remaining, want)
		}
	}
	if d, _ := l.Allow(ctx, lim); d.Allowed || d.Remaining != 2 {
		t.Fatalf("cost 4 with 2 left: %+v, want denied with 2 remaining", d)
	}
}

// Tenant A spending all of its budget leaves tenant B's whole.
func TestTenantsAreIsolated(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	a, b := tenantLimit(perHour(5), 5), tenantLimit(perHour(5), 5)
	for range 50 {
		l.Allow(ctx, a)
	}
	if d, _ := l.Allow(ctx, a); d.Allowed {
		t.Fatal("tenant A still allowed after flooding")
	}
	for i := range 5 {
		if d, _ := l.Allow(ctx, b); !d.Allowed || d.Remaining != int64(4-i) {
			t.Fatalf("tenant B request %d: %+v", i+1, d)
		}
	}
}

// Limits no request can meet are configuration errors, answered before Redis is asked.
func TestInvalidLimits(t *testing.T) {
	client := newClient(t, redisAddr)
	calls := countCalls(client)
	l, _ := newLimiter(t, client, newPrefix(t), ratelimit.Options{})
	scope := ratelimit.Tenant(uuid.New())
	ok := ratelimit.Limit{Scope: scope, Policy: "tenant", Rate: 1, Burst: 5}
	with := func(f func(*ratelimit.Limit)) []ratelimit.Limit {
		l := ok
		f(&l)
		return []ratelimit.Limit{l}
	}
	cases := map[string][]ratelimit.Limit{
		"cost above burst":    with(func(l *ratelimit.Limit) { l.Cost = 6 }),
		"negative cost":       with(func(l *ratelimit.Limit) { l.Cost = -1 }),
		"zero rate":           with(func(l *ratelimit.Limit) { l.Rate = 0 }),
		"zero burst":          with(func(l *ratelimit.Limit) { l.Burst = 0 }),
		"refill beyond years": with(func(l *ratelimit.Limit) { l.Rate, l.Burst = 1e-9, 1000 }),
		"no policy":           with(func(l *ratelimit.Limit) { l.Policy = "" }),
		"policy with a quote": with(func(l *ratelimit.Limit) { l.Policy = `a"b` }),
		"no scope":            with(func(l *ratelimit.Limit) { l.Scope = "" }),
		"brace in scope":      with(func(l *ratelimit.Limit) { l.Scope = "t:{x}" }),
		"negative in flight":  with(func(l *ratelimit.Limit) { l.MaxConcurrent = -1 }),
		"two scopes":          {ok, {Scope: ratelimit.Tenant(uuid.New()), Policy: "key", Rate: 1, Burst: 1}},
		"one bucket twice":    {ok, ok},
		"no limits":           {},
		"too many limits":     make([]ratelimit.Limit, 9),
	}
	for name, limits := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := l.Allow(context.Background(), limits...); !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Fatalf("got %v, want ErrInvalidLimit", err)
			}
		})
	}
	if n := calls.n.Load(); n != 0 {
		t.Fatalf("%d Redis calls for invalid limits, want none", n)
	}
	if _, err := ratelimit.New(client, ratelimit.Options{Prefix: "bad{prefix}:"}); err == nil {
		t.Fatal("a prefix with braces was accepted")
	}
}

// CheckRateLimit, which callers use to refuse a client's limit before storing it, agrees
// with Allow on every budget: what it accepts, Allow decides; what it refuses, Allow refuses
// as ErrInvalidLimit; and it names the member at fault.
func TestCheckRateLimitAgreesWithAllow(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	for _, c := range []struct {
		rl    auth.RateLimit
		field string // "" when valid
	}{
		{auth.RateLimit{RequestsPerSecond: 1, Burst: 1}, ""},
		{auth.RateLimit{RequestsPerSecond: 1e300, Burst: 1}, ""},
		{auth.RateLimit{RequestsPerSecond: 1e-6, Burst: 100}, ""},
		{auth.RateLimit{RequestsPerSecond: 1e6, Burst: 1e14}, ""},
		{auth.RateLimit{RequestsPerSecond: 1e-300, Burst: 1}, "rate_limit.requests_per_second"},
		{auth.RateLimit{RequestsPerSecond: 1, Burst: 1e12}, "rate_limit.requests_per_second"},
		{auth.RateLimit{RequestsPerSecond: 0, Burst: 1}, "rate_limit.requests_per_second"},
		{auth.RateLimit{RequestsPerSecond: math.Inf(1), Burst: 1}, "rate_limit.requests_per_second"},
		{auth.RateLimit{RequestsPerSecond: math.NaN(), Burst: 1}, "rate_limit.requests_per_second"},
		{auth.RateLimit{RequestsPerSecond: 1, Burst: 0}, "rate_limit.burst"},
		{auth.RateLimit{RequestsPerSecond: 1e300, Burst: 1e14 + 1}, "rate_limit.burst"},
		{auth.RateLimit{RequestsPerSecond: 1, Burst: 1, MaxConcurrent: -1}, "rate_limit.max_concurrent"},
	} {
		t.Run(fmt.Sprintf("%+v", c.rl), func(t *testing.T) {
			err := ratelimit.CheckRateLimit("rate_limit", c.rl)
			_, allowErr := l.Allow(context.Background(), ratelimit.FromRateLimit(ratelimit.Tenant(uuid.New()), "tenant", "", c.rl))
			if c.field == "" {
				if err != nil || allowErr != nil {
					t.Fatalf("CheckRateLimit: %v; Allow: %v; want both to accept", err, allowErr)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Invalid || len(e.Fields) != 1 || e.Fields[0].Field != c.field {
				t.Fatalf("CheckRateLimit: %v, want a validation error naming %s", err, c.field)
			}
			if !errors.Is(allowErr, ratelimit.ErrInvalidLimit) {
				t.Fatalf("Allow: %v, want ErrInvalidLimit", allowErr)
			}
		})
	}
}

// Every key is under the prefix, carries its scope's hash tag, and expires.
func TestKeysAreTaggedAndExpire(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, redisAddr)
	prefix := newPrefix(t)
	l, _ := newLimiter(t, client, prefix, ratelimit.Options{})
	tenant := tenantLimit(10, 10)
	tenant.MaxConcurrent = 2
	key := ratelimit.Limit{Scope: tenant.Scope, Policy: "key", ID: "k", Rate: 1, Burst: 3}
	d, err := l.Allow(ctx, tenant, key)
	if err != nil || !d.Allowed {
		t.Fatal(d, err)
	}
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("keys %q, want two buckets and one in-flight set", keys)
	}
	tag := prefix + "{" + string(tenant.Scope) + "}:"
	for _, k := range keys {
		if !strings.HasPrefix(k, tag) {
			t.Errorf("key %q does not start with %q", k, tag)
		}
		if strings.Contains(k, "}:r:") {
			// A bucket holds its TAT in whole µs, written in full: 16 digits, not 1.7e+15.
			v := client.Get(ctx, k).Val()
			tat, err := strconv.ParseInt(v, 10, 64)
			if off := time.Until(time.UnixMicro(tat)); err != nil || off < 0 || off > time.Second {
				t.Errorf("bucket %q holds %q, want the µs of a moment within the next second", k, v)
			}
		}
		if ttl := client.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q has no TTL (%v)", k, ttl)
		}
	}
	if slot := client.ClusterKeySlot(ctx, keys[0]); slot.Err() == nil {
		for _, k := range keys[1:] {
			if client.ClusterKeySlot(ctx, k).Val() != slot.Val() {
				t.Errorf("key %q hashes to another slot than %q", k, keys[0])
			}
		}
	}
	d.Release(ctx)
}

// After a denial the same bucket is answered locally, so a flood costs Redis nothing more;
// a cheaper request the snapshot does not rule out still goes to Redis; an entry answers for
// a second at most.
func TestDenyCache(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, redisAddr)
	calls := countCalls(client)
	clk := clock.NewFixed(time.Now())
	l, reg := newLimiter(t, client, newPrefix(t), ratelimit.Options{Clock: clk})

	lim := tenantLimit(perHour(1), 5)
	for range 5 {
		l.Allow(ctx, lim)
	}
	before := calls.n.Load()
	for range 1000 {
		d, err := l.Allow(ctx, lim)
		if err != nil || d.Allowed || d.Policy != "tenant" || d.RetryAfter <= 0 {
			t.Fatalf("flood: %+v, %v; want denied by tenant with a retry time", d, err)
		}
	}
	if n := calls.n.Load() - before; n != 0 {
		t.Fatalf("%d Redis calls for 1000 denied requests, want 0", n)
	}
	if hits := metric(t, reg, "ratelimit_deny_cache_hits_total"); hits != 1000 {
		t.Fatalf("deny cache hits %v, want 1000", hits)
	}
	if denied := metric(t, reg, "ratelimit_denied_total", "policy", "tenant"); denied != 1000 {
		t.Fatalf("denied_total %v, want 1000", denied)
	}

	clk.Advance(time.Second)
	before = calls.n.Load()
	if d, _ := l.Allow(ctx, lim); d.Allowed {
		t.Fatal("allowed after a second of a one-an-hour refill")
	}
	if calls.n.Load() == before {
		t.Fatal("a denial was answered locally for more than a second")
	}

	// Cost 3 of 5 fills the bucket past another 3 but leaves room for 1.
	lim = tenantLimit(perHour(1), 5)
	lim.Cost = 3
	l.Allow(ctx, lim)
	if d, _ := l.Allow(ctx, lim); d.Allowed {
		t.Fatal("a second cost-3 request was allowed in a bucket of 5")
	}
	lim.Cost = 1
	before = calls.n.Load()
	if d, _ := l.Allow(ctx, lim); !d.Allowed {
		t.Fatalf("a cost-1 request was denied with 2 left: %+v", d)
	}
	if calls.n.Load() == before {
		t.Fatal("the cost-1 request was not asked of Redis")
	}
}

// A flood from many goroutines at once costs Redis a couple of calls per admitted request:
// when a cached denial runs out, one request asks and the others wait for its answer. (Two,
// not one: the cache drains its snapshot from when the call was sent, a little before Redis
// took it, so the first ask after a run-out is often a little early.)
func TestDenyCacheUnderAFlood(t *testing.T) {
	client := newClient(t, redisAddr)
	calls := countCalls(client)
	l, _ := newLimiter(t, client, newPrefix(t), ratelimit.Options{})
	lim := tenantLimit(50, 5)
	var sent, admitted atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Second)
	for range 32 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				sent.Add(1)
				if d, _ := l.Allow(context.Background(), lim); d.Allowed {
					admitted.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	n, a, s := calls.n.Load(), admitted.Load(), sent.Load()
	t.Logf("%d requests, %d admitted, %d Redis calls", s, a, n)
	// Without the cache every request is a call (n ≈ s). With it, a couple per admitted
	// request; the bound leaves room for a busy machine, where waiters time out and ask
	// themselves more often (BenchmarkFlood measures the calls).
	if n > 5*a+20 || n > s/10 {
		t.Fatalf("%d Redis calls for %d requests, %d admitted: want at most 5 per admitted request, and far fewer than requests", n, s, a)
	}
}

// A tenant capped at three requests in flight gets three; the fourth is denied by the
// cap, without spending from the rate; a release lets the next one in; a slot never released
// expires with its lease.
func TestConcurrencyLimit(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{ConcurrencyLease: time.Second})
	lim := tenantLimit(perHour(1000), 1000) // no refill within the test
	lim.MaxConcurrent = 3

	var held []ratelimit.Decision
	for i := range 3 {
		d, err := l.Allow(ctx, lim)
		if err != nil || !d.Allowed {
			t.Fatalf("request %d of 3 in flight: %+v %v", i+1, d, err)
		}
		held = append(held, d)
	}
	d, _ := l.Allow(ctx, lim)
	if d.Allowed || d.Policy != "tenant.concurrency" || d.RetryAfter != time.Second {
		t.Fatalf("fourth in flight: %+v, want denied by tenant.concurrency", d)
	}
	if d.Remaining != 1000-3 {
		t.Fatalf("remaining %d after a concurrency denial, want %d: the denial spent", d.Remaining, 1000-3)
	}
	held[0].Release(ctx)
	held[0].Release(ctx) // a second release gives back nothing more
	if d, _ := l.Allow(ctx, lim); !d.Allowed {
		t.Fatalf("denied after a release: %+v", d)
	}
	if d, _ := l.Allow(ctx, lim); d.Allowed {
		t.Fatal("a double release freed two slots")
	}
	time.Sleep(1100 * time.Millisecond) // every lease expires
	for i := range 3 {
		if d, _ := l.Allow(ctx, lim); !d.Allowed {
			t.Fatalf("request %d after the leases expired: %+v", i+1, d)
		}
	}
}

// A limit changed by the resolver holds at once on every replica: a raised burst lets the
// tenant go on, a lowered one stops it (even with a denial of the old limit in the deny
// cache), a faster rate refills at the new pace.
func TestLimitChangeHoldsOnEveryReplica(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix(t)
	a, _ := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	b, _ := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	scope := ratelimit.Tenant(uuid.New())
	var current atomic.Pointer[ratelimit.Limit]
	set := func(rate float64, burst int) time.Time {
		current.Store(&ratelimit.Limit{Scope: scope, Policy: "tenant", Rate: rate, Burst: burst})
		return time.Now()
	}
	resolve := func() ratelimit.Limit { return *current.Load() }
	// within reports how long after the change replica l first decided as want.
	within := func(l *ratelimit.Limiter, changed time.Time, want bool) time.Duration {
		for time.Since(changed) < 2*time.Second {
			d, _ := l.Allow(ctx, resolve())
			if d.Allowed == want {
				return time.Since(changed)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("a changed limit did not hold within 2s")
		return 0
	}

	set(perHour(5), 5)
	for range 5 {
		a.Allow(ctx, resolve())
	}
	for _, l := range []*ratelimit.Limiter{a, b} {
		if d, _ := l.Allow(ctx, resolve()); d.Allowed {
			t.Fatal("allowed beyond the burst")
		}
	}

	changed := set(perHour(5), 10) // a raised burst
	for _, l := range []*ratelimit.Limiter{a, b} {
		if took := within(l, changed, true); took > time.Second {
			t.Fatalf("a raised limit held after %v", took)
		}
	}

	changed = set(perHour(5), 3) // a burst lowered below what is spent
	for _, l := range []*ratelimit.Limiter{a, b} {
		if took := within(l, changed, false); took > time.Second {
			t.Fatalf("a lowered limit held after %v", took)
		}
	}

	changed = set(100, 100) // a faster refill frees the budget at once
	for _, l := range []*ratelimit.Limiter{b, a} {
		if took := within(l, changed, true); took > time.Second {
			t.Fatalf("a faster rate held after %v", took)
		}
	}
}

// Peek answers what Allow would and spends nothing, so a budget charged after the fact
// (failed authentications) can be checked before the work it pays for: in Redis, where
// another replica sees the same, and in the replica's own limiter while Redis is away. A cap
// on requests in flight cannot be peeked at.
func TestPeekSpendsNothing(t *testing.T) {
	ctx := context.Background()
	prefix := newPrefix(t)
	a, _ := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	b, _ := newLimiter(t, newClient(t, redisAddr), prefix, ratelimit.Options{})
	// Nobody listens on port 1: every call fails at once, and decisions are the replica's own.
	down, _ := newLimiter(t, newClient(t, "127.0.0.1:1", func(o *redis.Options) { o.MaxRetries, o.DialerRetries = -1, 1 }), newPrefix(t), ratelimit.Options{})

	for name, l := range map[string]*ratelimit.Limiter{"Redis": a, "without Redis": down} {
		t.Run(name, func(t *testing.T) {
			lim := tenantLimit(perHour(1), 2)
			for i := range 5 {
				if d, err := l.Peek(ctx, lim); err != nil || !d.Allowed {
					t.Fatalf("peek %d at a full bucket: %+v, %v", i+1, d, err)
				}
			}
			for i := range 2 {
				if d, _ := l.Allow(ctx, lim); !d.Allowed {
					t.Fatalf("request %d after the peeks: denied; the peeks spent", i+1)
				}
			}
			if d, err := l.Peek(ctx, lim); err != nil || d.Allowed || d.Policy != "tenant" || d.RetryAfter <= 0 {
				t.Fatalf("peek at a spent bucket: %+v, %v; want denied by tenant, with a retry time", d, err)
			}
			if l == a {
				if d, err := b.Peek(ctx, lim); err != nil || d.Allowed {
					t.Fatalf("another replica's peek at the spent bucket: %+v, %v", d, err)
				}
			}
		})
	}

	capped := tenantLimit(1, 1)
	capped.MaxConcurrent = 1
	if _, err := a.Peek(ctx, capped); !errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Fatalf("peek at a concurrency cap: %v, want ErrInvalidLimit", err)
	}
}
