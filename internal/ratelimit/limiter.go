package ratelimit

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/saasbase/saasbase/internal/platform/clock"
)

// Options tune a Limiter. The zero value of each field is its default.
type Options struct {
	Prefix           string                // REDIS_KEY_PREFIX, before every key's hash tag, e.g. "saasbase:"
	Timeout          time.Duration         // hard bound on a decision: waits and the Redis call (50ms)
	FailureMode      FailureMode           // for limits that do not choose: FailOpen (the default) or FailClosed
	BreakerThreshold int                   // Redis failures in a row that open the circuit (5)
	BreakerCooldown  time.Duration         // how long the circuit stays open before a probe (1s)
	DenyCache        time.Duration         // the longest a denial is answered locally, at most 1s (1s); negative turns the cache off
	ConcurrencyLease time.Duration         // how long a claim of in-flight slots lives unrenewed, and an unreleased slot: longer than the slowest request (1m)
	Clock            clock.Clock           // the clock of local decisions (clock.System); shared decisions use Redis TIME
	Registerer       prometheus.Registerer // where the metrics go (nil: a registry of their own)
}

// Limiter decides requests against their limits, in one Redis round trip each.
type Limiter struct {
	redis  *pipeliner
	script *redis.Script
	opts   Options

	breaker *breaker
	local   *local
	denies  *denyCache // nil when off
	metrics *metrics
	hot     *hot // claims of in-flight slots, rate leases

	replica string // names this replica's claims
}

//go:embed gcra.lua
var gcraScript string

// New returns a Limiter on client. Timeout holds whatever the client's configuration; with
// ContextTimeoutEnabled set on the client, a stalled call also gives its connection back at
// the timeout rather than at the client's read timeout.
func New(client redis.UniversalClient, opts Options) (*Limiter, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: register metrics: %w", err)
	}
	l := &Limiter{
		redis: &pipeliner{
			client: client, deadlines: &deadlines{timeout: opts.Timeout},
			direct: boundsByContext(client), lanes: 4 * runtime.GOMAXPROCS(0),
		},
		script:  redis.NewScript(gcraScript),
		opts:    opts,
		local:   newLocal(opts.Clock),
		metrics: m,
		replica: strconv.FormatUint(rand.Uint64(), 36),
	}
	l.breaker = &breaker{
		clock: opts.Clock, threshold: int32(opts.BreakerThreshold), cooldown: opts.BreakerCooldown,
		onChange: func(open bool) {
			if open {
				m.circuitOpen.Set(1)
			} else {
				m.circuitOpen.Set(0)
			}
		},
	}
	if opts.DenyCache > 0 {
		l.denies = newDenyCache(opts.Clock, opts.DenyCache)
	}
	l.hot = newHot(l)
	return l, nil
}

func (o *Options) defaults() error {
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("ratelimit: key prefix %q must not contain { or }: they would move the hash tag", o.Prefix)
	}
	if o.FailureMode == FailDefault {
		o.FailureMode = FailOpen
	}
	if o.FailureMode > FailClosed {
		return fmt.Errorf("ratelimit: unknown failure mode %d", o.FailureMode)
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = time.Second
	}
	switch {
	case o.DenyCache == 0 || o.DenyCache > time.Second:
		o.DenyCache = time.Second // a changed limit must hold within a second
	case o.DenyCache < 0:
		o.DenyCache = 0
	}
	if o.ConcurrencyLease <= 0 {
		o.ConcurrencyLease = time.Minute
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry() // counted, not exported
	}
	return nil
}

// boundsByContext reports whether the client stops a command at its context's deadline.
func boundsByContext(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// Allow decides one request against all its limits at once: it is allowed only if every
// limit allows it, and then spends from each; denied, it spends from none. The error is
// ErrInvalidLimit for limits no request can meet (such as a cost above the burst), or the
// context's error; Redis failing is no error but a degraded decision.
func (l *Limiter) Allow(ctx context.Context, limits ...Limit) (Decision, error) {
	c, err := l.prepare(limits)
	if err != nil {
		return Decision{}, err
	}
	return l.decide(ctx, c)
}

// Peek answers the decision Allow would make now, and spends nothing: for a budget charged
// after the fact, such as failed authentications, to be checked before the work it pays for.
// It is answered as Allow is (the deny cache, Redis, the failure mode), but never from a
// rate lease, so a replica holding leased units may see a bucket emptier than it is. Limits
// that cap concurrency hold slots, which a peek cannot, and are refused (ErrInvalidLimit).
func (l *Limiter) Peek(ctx context.Context, limits ...Limit) (Decision, error) {
	c, err := l.prepare(limits)
	if err != nil {
		return Decision{}, err
	}
	if c.capped > 0 {
		return Decision{}, fmt.Errorf("%w: a peek cannot decide a cap on requests in flight", ErrInvalidLimit)
	}
	c.peek = true
	return l.decide(ctx, c)
}

// decide answers a prepared call: from a lease, the deny cache, Redis or the failure mode.
func (l *Limiter) decide(ctx context.Context, c *call) (Decision, error) {
	// The decision's hard bound, taken only once something may wait: a request admitted from
	// a lease, most of them on a busy replica, reads no clock for it.
	var deadline context.Context
	if c.leasable && !c.peek {
		// Units already spent in Redis come first: the deny cache may deny what Redis
		// would deny a new request, not what it has granted. A refill out is worth a wait, or
		// a few: each answer is fresh units.
		for try := 0; ; try++ {
			d, ok, wait := l.hot.fromLease(c)
			if ok {
				l.metrics.leased.Inc()
				l.metrics.record(d)
				return d, nil
			}
			if wait == nil || try == 3 {
				break
			}
			if deadline == nil {
				deadline = l.redis.deadlines.get()
			}
			select {
			case <-wait:
				continue
			case <-deadline.Done():
			case <-ctx.Done():
				return Decision{}, ctx.Err()
			}
			break
		}
	}
	if deadline == nil {
		deadline = l.redis.deadlines.get()
	}
	d, denied, err := l.denies.answer(ctx, deadline, c)
	switch {
	case err != nil:
		return Decision{}, err
	case denied:
		l.metrics.denyCache.Inc()
		l.metrics.record(d)
		return d, nil
	}
	defer l.denies.settle(c)
	if !l.breaker.allow() {
		return l.degrade(c, reasonCircuit), nil
	}
	return l.ask(ctx, deadline, c)
}

// ask decides the call in Redis.
func (l *Limiter) ask(ctx, deadline context.Context, c *call) (Decision, error) {
	units := int64(1)
	if c.peek {
		units = 0
	}
	if c.capped > 0 || c.lease != nil {
		sh := l.hot.shard(c.limits[0].Scope)
		sh.mu.Lock()
		if c.capped > 0 {
			l.hot.acquire(sh, c, mono(), false)
		}
		units = c.refill()
		sh.mu.Unlock()
	}
	start := time.Now()
	sent := l.opts.Clock.Now() // before Redis reads its TIME: the deny cache's bound holds
	sentMono := mono()         // likewise for the claims' expiry
	vals, err := l.redis.do(ctx, deadline, l.script, c.keys, c.args(units, l.replica, l.hot.lease))
	l.metrics.redis.Observe(time.Since(start).Seconds())
	var allowed bool
	var st []state
	var claims []int64
	if err == nil {
		allowed, units, st, claims, err = c.parseReply(vals)
	}
	if err != nil {
		l.hot.settle(c, false, 0, nil, nil, sentMono)
	}
	switch {
	case err == nil:
		l.breaker.success()
	case ctx.Err() != nil:
		l.breaker.abandon()
		return Decision{}, ctx.Err()
	case isTimeout(err):
		l.breaker.failure()
		return l.degrade(c, reasonTimeout), nil
	default:
		l.breaker.failure()
		return l.degrade(c, reasonError), nil
	}

	l.hot.settle(c, allowed, units, st, claims, sentMono)
	d := c.decide(allowed, st)
	if allowed && c.capped > 0 {
		d.hold = &hold{l: l, scope: c.limits[0].Scope, uses: c.uses}
	}
	l.denies.remember(c, allowed, units, st, sent)
	l.metrics.record(d)
	return d, nil
}

// degrade decides without Redis, by the call's failure mode.
func (l *Limiter) degrade(c *call, reason string) Decision {
	var d Decision
	if c.closedBy >= 0 {
		d = c.deniedClosed()
	} else {
		allowed, st := l.local.decide(c)
		d = c.decide(allowed, st)
		d.Degraded = true
		if allowed && c.capped > 0 {
			d.hold = &hold{l: l, scope: c.limits[0].Scope, keys: c.concKeys(), local: true}
		}
	}
	l.metrics.recordDegraded(reason, d)
	l.metrics.record(d)
	return d
}

// isTimeout reports whether a call failed for want of an answer in time: the context's
// deadline, or the socket's when the client enforces it.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// CircuitOpen reports whether decisions are currently made without Redis.
func (l *Limiter) CircuitOpen() bool { return l.breaker.isOpen() }
