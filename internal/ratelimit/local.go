package ratelimit

import (
	"hash/maphash"
	"sync"

	"github.com/saasbase/saasbase/internal/platform/clock"
)

// local is the replica's own limiter, used when Redis cannot be asked and the call fails
// open. It decides exactly as the script does, on the replica's clock, so during an outage
// a tenant gets at most its limit from each replica. Its buckets start full: an outage
// forgives what the tenant had spent in Redis, which is the price of staying up.
type local struct {
	clock  clock.Clock
	seed   maphash.Seed
	shards [64]localShard
}

// A shard holds whole scopes, so a decision locks one mutex for all its limits.
type localShard struct {
	mu       sync.Mutex
	tats     map[string]int64 // bucket key → TAT, µs
	inflight map[string]int64 // in-flight set key → requests
	sweepAt  int
}

const minSweep = 1024

func newLocal(c clock.Clock) *local {
	l := &local{clock: c, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tats = make(map[string]int64)
		l.shards[i].inflight = make(map[string]int64)
		l.shards[i].sweepAt = minSweep
	}
	return l
}

func (l *local) shard(s Scope) *localShard {
	return &l.shards[maphash.String(l.seed, string(s))%uint64(len(l.shards))]
}

// decide is the script, in process.
func (l *local) decide(c *call) (allowed bool, st []state) {
	now := l.clock.Now().UnixMicro()
	sh := l.shard(c.limits[0].Scope)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	st = c.states
	allowed = true
	conc := c.concKeys()
	j := 0
	for i, p := range c.params {
		tat, ok := sh.tats[c.keys[i]]
		if !ok {
			tat = now
		}
		st[i] = state{used: p.usedAt(tat, now), inflight: -1}
		if ok && tat-now > p.tau() {
			sh.tats[c.keys[i]] = now + p.tau() // a lowered limit: empty, refilling from now
		}
		if !p.admits(st[i].used) {
			allowed = false
		}
		if p.maxConc > 0 {
			st[i].inflight = sh.inflight[conc[j]]
			j++
			if st[i].inflight >= p.maxConc {
				allowed = false
			}
		}
	}
	if !allowed || c.peek {
		return allowed, st
	}
	for i, p := range c.params {
		sh.tats[c.keys[i]] = now + st[i].used + p.interval*p.cost
	}
	for _, k := range conc {
		sh.inflight[k]++
	}
	sh.sweep(now)
	return true, st
}

// release gives back the in-flight slots a local decision took.
func (l *local) release(s Scope, keys []string) {
	sh := l.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, k := range keys {
		if sh.inflight[k]--; sh.inflight[k] <= 0 {
			delete(sh.inflight, k)
		}
	}
}

// sweep drops the buckets that are full again, which are as good as absent, once the shard
// has doubled since the last sweep: amortised constant time, and memory bounded by the
// buckets in use.
func (sh *localShard) sweep(now int64) {
	if len(sh.tats) < sh.sweepAt {
		return
	}
	for k, tat := range sh.tats {
		if tat <= now {
			delete(sh.tats, k)
		}
	}
	sh.sweepAt = max(2*len(sh.tats), minSweep)
}
