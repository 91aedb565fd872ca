package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// hot is what this replica holds of the shared state, so that a busy tenant is admitted
// without a Redis call: its claims of in-flight slots (here) and its rate leases (lease.go).
// A shard holds whole scopes, so a decision locks one mutex.
type hot struct {
	l      *Limiter
	seed   maphash.Seed
	lease  int64 // ConcurrencyLease, µs
	epoch  int64 // µs: the grain at which an unreleased slot expires locally
	shards [64]hotShard

	claims  atomic.Int64 // claims held in all shards; the maintainer runs while there are any
	mu      sync.Mutex
	running bool
}

type hotShard struct {
	mu     sync.Mutex
	claims map[string]*claim
	leases map[string]*rateLease
	sweep  int
}

// claim is this replica's share of one limit's in-flight slots: Redis counts slots, and the
// replica admits locally while its in-flight requests fit in them.
type claim struct {
	slots    int64 // what Redis last said the claim is (the newest version seen)
	limit    int64 // the cap it was granted under: under another, it admits nothing locally
	version  int64
	expires  int64 // local µs, no later than Redis's expiry: the call was sent before Redis read its clock
	shrinkTo int64 // while a shrink is out, admission stays within it; -1 when none
	busy     bool  // a maintenance call is out
	pending  int   // calls out that may grow the claim
	inflight int64
	peak     int64 // the most in flight since the last maintenance tick
	// epochs counts the in-flight requests by when they were admitted, so that one never
	// released stops counting after the lease, as a dead replica's claim expires in Redis.
	epochs []epochCount
}

type epochCount struct{ epoch, n int64 }

// use is one capped limit of a call: the claim it counts in, and what it asks of Redis.
type use struct {
	cl         *claim
	limit      int64 // the cap
	epoch      int64
	need, want int64 // slots needed with this request, and wanted; 0 when it fits the claim
}

// started is the origin of mono: claims and leases are shares of decisions made on Redis's
// clock, so they run on real time, whatever Options.Clock says.
var started = time.Now()

func mono() int64 { return int64(time.Since(started) / time.Microsecond) }

func newHot(l *Limiter) *hot {
	h := &hot{l: l, seed: maphash.MakeSeed(), lease: l.opts.ConcurrencyLease.Microseconds()}
	h.epoch = max(h.lease/8, 1)
	for i := range h.shards {
		h.shards[i].claims = make(map[string]*claim)
		h.shards[i].leases = make(map[string]*rateLease)
		h.shards[i].sweep = minSweep
	}
	return h
}

func (h *hot) shard(s Scope) *hotShard {
	return &h.shards[maphash.String(h.seed, string(s))%uint64(len(h.shards))]
}

// room is how many requests the claim admits now under the cap limit.
func (cl *claim) room(now, limit int64) int64 {
	if now >= cl.expires || limit != cl.limit {
		return 0
	}
	if cl.shrinkTo >= 0 {
		return min(cl.slots, cl.shrinkTo)
	}
	return cl.slots
}

// expire stops counting requests admitted a lease ago or more.
func (cl *claim) expire(now, epoch, lease int64) {
	for len(cl.epochs) > 0 && cl.epochs[0].epoch*epoch+lease <= now {
		cl.inflight -= cl.epochs[0].n
		cl.epochs = cl.epochs[1:]
	}
}

func (cl *claim) add(now, epoch int64) int64 {
	e := now / epoch
	if k := len(cl.epochs); k > 0 && cl.epochs[k-1].epoch == e {
		cl.epochs[k-1].n++
	} else {
		cl.epochs = append(cl.epochs, epochCount{e, 1})
	}
	cl.inflight++
	cl.peak = max(cl.peak, cl.inflight)
	return e
}

func (cl *claim) remove(e int64) {
	for i := range cl.epochs {
		if cl.epochs[i].epoch == e {
			cl.inflight--
			if cl.epochs[i].n--; cl.epochs[i].n == 0 {
				cl.epochs = append(cl.epochs[:i], cl.epochs[i+1:]...)
			}
			return
		}
	}
}

// bonus is how many slots beyond its need the replica asks for: half its recent peak, so a
// steady load fits its claim, and a cold tenant asks exactly.
func (cl *claim) bonus() int64 { return min((cl.peak+1)/2, 64) }

// claimFor is the claim of key, made if new; sh.mu is held.
func (h *hot) claimFor(sh *hotShard, key string) *claim {
	cl := sh.claims[key]
	if cl == nil {
		cl = &claim{shrinkTo: -1}
		sh.claims[key] = cl
		h.claims.Add(1)
		h.kick()
	}
	return cl
}

// acquire counts the request in each capped limit's claim: where it fits, locally, else it
// asks Redis for a claim that fits it. tryLocal, when set, admits only if every limit has
// room, and changes nothing otherwise.
func (h *hot) acquire(sh *hotShard, c *call, now int64, tryLocal bool) bool {
	conc := c.concKeys()
	c.uses = buf(c.usesBuf[:], len(conc))
	j := 0
	for _, p := range c.params {
		if p.maxConc == 0 {
			continue
		}
		cl := h.claimFor(sh, conc[j])
		cl.expire(now, h.epoch, h.lease)
		if tryLocal && cl.inflight >= cl.room(now, p.maxConc) {
			c.uses = c.uses[:0]
			return false
		}
		c.uses[j] = use{cl: cl, limit: p.maxConc}
		j++
	}
	for j := range c.uses {
		u := &c.uses[j]
		u.epoch = u.cl.add(now, h.epoch)
		if u.cl.inflight > u.cl.room(now, u.limit) {
			u.need, u.want = u.cl.inflight, u.cl.inflight+u.cl.bonus()
			u.cl.pending++
		}
	}
	return true
}

// settle applies Redis's answer to the claims the call asked about and to its lease; denied
// or unanswered (claims nil), the request counts in none of the claims.
func (h *hot) settle(c *call, allowed bool, units int64, st []state, claims []int64, sent int64) {
	if len(c.uses) == 0 && c.lease == nil {
		return
	}
	sh := h.shard(c.limits[0].Scope)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h.settleLease(c, allowed, units, st, sent)
	for j, u := range c.uses {
		if u.need > 0 {
			u.cl.pending--
			if allowed && claims != nil {
				u.cl.update(claims[3*j], claims[3*j+1], claims[3*j+2], sent, u.limit)
			}
		}
		if !allowed {
			u.cl.remove(u.epoch)
		}
	}
}

// update takes an answer from Redis about the claim, if it is newer than what it knows.
func (cl *claim) update(slots, version, ttl, sent, limit int64) {
	if version > cl.version {
		cl.slots, cl.version, cl.expires, cl.limit = slots, version, sent+ttl, limit
	}
}

// release gives back a request's slots.
func (h *hot) release(s Scope, uses []use) {
	sh := h.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, u := range uses {
		u.cl.remove(u.epoch)
	}
}

// kick starts the maintainer unless it runs.
func (h *hot) kick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running {
		h.running = true
		go h.maintain()
	}
}

// tick is how often claims are looked after: a claim no longer needed is given back within
// two ticks.
func (h *hot) tick() time.Duration {
	return max(min(100*time.Millisecond, time.Duration(h.lease)*time.Microsecond/4), time.Millisecond)
}

// claimScript shrinks or renews a claim, if it is still the version the replica knows: a
// claim grown meanwhile is left as it is.
//
// KEYS: the claims hash. ARGV: replica, slots, expected version, lease µs.
// Returns {done (0|1), slots, version, µs to live} of the claim as it now is.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local val = redis.call('HGET', KEYS[1], ARGV[1])
if not val then return {0, 0, 0, 0} end
local s, e, v = string.match(val, '^(%d+) (%d+) (%d+)$')
s, e, v = tonumber(s), tonumber(e), tonumber(v)
if v ~= tonumber(ARGV[3]) or e <= now then
  if e <= now then s = 0 end
  return {0, s, v, math.max(e - now, 0)}
end
local slots, lease = tonumber(ARGV[2]), tonumber(ARGV[4])
local nv = math.max(now, v + 1)
if slots == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {1, 0, nv, 0}
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d %d %d', slots, now + lease, nv))
if redis.call('PTTL', KEYS[1]) < math.ceil(lease / 1000) then
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000))
end
return {1, slots, nv, lease}`)

// maintenance is one shrink or renewal.
type maintenance struct {
	sh      *hotShard
	cl      *claim
	key     string
	slots   int64
	version int64
}

// maintain runs while the replica holds claims: each tick it gives back what its in-flight
// requests no longer need (all of it when idle), renews what they do before it expires,
// and forgets the claims that are done. Its calls go out together, off the request path.
func (h *hot) maintain() {
	t := time.NewTicker(h.tick())
	defer t.Stop()
	for range t.C {
		ops := h.collect()
		if len(ops) > 0 {
			h.run(ops)
		}
		h.mu.Lock()
		if h.claims.Load() == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

func (h *hot) collect() []maintenance {
	now := mono()
	canCall := !h.l.breaker.isOpen()
	var ops []maintenance
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for key, cl := range sh.claims {
			cl.expire(now, h.epoch, h.lease)
			peak := cl.peak
			cl.peak = cl.inflight
			if now >= cl.expires {
				cl.slots = 0
			}
			if cl.busy || cl.pending > 0 {
				continue
			}
			if cl.slots == 0 {
				// Expired or given back, so gone from Redis too: whatever version Redis
				// writes next is news (a Redis whose clock went back included).
				cl.version = 0
			}
			if cl.slots == 0 && cl.inflight == 0 {
				delete(sh.claims, key)
				h.claims.Add(-1)
				continue
			}
			if !canCall || cl.slots == 0 {
				continue
			}
			target := cl.slots
			switch {
			case peak == 0:
				target = 0
			case cl.slots > 2*peak+1:
				target = peak + peak/2
			case cl.expires-now >= h.lease/2:
				continue // needed, and not due for renewal
			}
			cl.busy, cl.shrinkTo = true, target
			ops = append(ops, maintenance{sh: sh, cl: cl, key: key, slots: target, version: cl.version})
		}
		sh.mu.Unlock()
	}
	return ops
}

// run sends the calls at once: the pipeliner batches them.
func (h *hot) run(ops []maintenance) {
	var wg sync.WaitGroup
	sent := mono()
	deadline := h.l.redis.deadlines.get()
	for _, op := range ops {
		wg.Go(func() {
			vals, err := h.l.redis.do(context.Background(), deadline, claimScript,
				[]string{op.key}, []any{h.l.replica, op.slots, op.version, h.lease})
			if err == nil && len(vals) != 4 {
				err = errReply
			}
			if err != nil {
				h.l.breaker.failure()
			} else {
				h.l.breaker.success()
			}
			op.sh.mu.Lock()
			defer op.sh.mu.Unlock()
			op.cl.busy, op.cl.shrinkTo = false, -1
			switch {
			case err != nil:
				if op.slots < op.cl.slots {
					// The shrink may or may not have happened: believe the smaller.
					op.cl.slots = op.slots
				}
			case vals[0] == 1 || vals[2] > op.cl.version:
				op.cl.update(vals[1], vals[2], vals[3], sent, op.cl.limit)
			default:
				// Gone or expired in Redis, and not grown since: nothing is held.
				op.cl.slots = 0
			}
		})
	}
	wg.Wait()
}

var errReply = errors.New("ratelimit: unexpected answer from the claim script")
