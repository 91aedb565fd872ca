package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
)

// denyCache remembers, per bucket, the last state Redis reported when that state proves the
// next request would be denied. The state is a lower bound of the bucket's fullness (other
// replicas can only add to it), so while the bound, drained at the refill rate, still leaves
// no room, the denial is certain and is answered here. An entry answers at most ttl (≤ 1 s)
// and only for the limit it was taken under, so a changed limit is never answered from it.
//
// When an entry runs out (a token is due), the first request asks Redis and the requests
// behind it wait for that answer instead of asking too: without that, a flood would send
// Redis a request for every one arriving within a round trip of each token.
type denyCache struct {
	clock  clock.Clock
	ttl    int64 // µs
	seed   maphash.Seed
	size   atomic.Int64 // entries in all shards: lets the usual call skip the lookups
	shards [32]denyShard
}

type denyShard struct {
	mu      sync.RWMutex
	entries map[string]denyEntry
	sweepAt int
}

type denyEntry struct {
	interval, burst int64 // the limit the snapshot was taken under
	used            int64 // µs in use, as Redis reported after the decision
	at, until       int64 // local µs: when the call was sent, and when the entry stops answering
	// probe, while a request sent after the entry ran out is out, is closed when its answer
	// is in; nil when none is out.
	probe chan struct{}
}

// probe is a bucket a call asks Redis about for the requests waiting behind it.
type probe struct {
	key string
	ch  chan struct{}
}

func newDenyCache(c clock.Clock, ttl time.Duration) *denyCache {
	dc := &denyCache{clock: c, ttl: ttl.Microseconds(), seed: maphash.MakeSeed()}
	for i := range dc.shards {
		dc.shards[i].entries = make(map[string]denyEntry)
		dc.shards[i].sweepAt = minSweep
	}
	return dc
}

func (dc *denyCache) shard(key string) *denyShard {
	return &dc.shards[maphash.String(dc.seed, key)%uint64(len(dc.shards))]
}

// answer denies the call when one of its buckets is known to deny it. When another request
// is already asking Redis about one of them, it waits for that answer and looks again: each
// answer is fresher news, and each wait ends with one.
func (dc *denyCache) answer(ctx, deadline context.Context, c *call) (Decision, bool, error) {
	if dc == nil {
		return Decision{}, false, nil
	}
	for {
		d, denied, wait := dc.check(c)
		if denied || wait == nil {
			return d, denied, nil
		}
		select {
		case <-wait:
		case <-deadline.Done():
			return Decision{}, false, nil // Redis is slow: asking it will say so
		case <-ctx.Done():
			return Decision{}, false, ctx.Err()
		}
	}
}

// check looks the call's buckets up: denied, or a probe to wait for, or neither (then the
// call asks Redis, as the probe of the buckets whose entries ran out).
func (dc *denyCache) check(c *call) (d Decision, denied bool, wait <-chan struct{}) {
	if dc.size.Load() == 0 {
		return Decision{}, false, nil
	}
	now := dc.clock.Now().UnixMicro()
	for i, p := range c.params {
		key := c.keys[i]
		sh := dc.shard(key)
		sh.mu.RLock()
		e, ok := sh.entries[key]
		sh.mu.RUnlock()
		if !ok {
			continue
		}
		if now < e.until && e.interval == p.interval && e.burst == p.burst {
			if used := max(e.used-(now-e.at), 0); !p.admits(used) {
				dc.settle(c)
				v := p.viewOf(used, false)
				return Decision{
					Policy: c.limits[i].Policy, Remaining: v.remaining,
					ResetAfter: micros(v.wait), RetryAfter: micros(v.wait),
					call: c, binding: i,
				}, true, nil
			}
		}
		// The entry decides nothing now: someone must ask Redis.
		sh.mu.Lock()
		e, ok = sh.entries[key]
		switch {
		case !ok:
		case e.probe != nil:
			sh.mu.Unlock()
			dc.settle(c)
			return Decision{}, false, e.probe
		case e.probe == nil:
			e.probe = make(chan struct{})
			sh.entries[key] = e
			c.probes = append(c.probes, probe{key, e.probe})
		}
		sh.mu.Unlock()
	}
	return Decision{}, false, nil
}

// settle lets go the waiters of the probes the call still holds: its answer did not come,
// or did not concern them.
func (dc *denyCache) settle(c *call) {
	if dc == nil {
		return
	}
	for _, pr := range c.probes {
		sh := dc.shard(pr.key)
		sh.mu.Lock()
		if e, ok := sh.entries[pr.key]; ok && e.probe == pr.ch {
			close(pr.ch)
			e.probe = nil
			sh.entries[pr.key] = e
		}
		sh.mu.Unlock()
	}
	c.probes = c.probes[:0]
}

// remember keeps the buckets of a Redis answer that leave no room for the next request, and
// forgets those that do; allowed, the call spent units of its cost from each. sent is when
// the call left, before Redis read its clock: draining the snapshot from then on keeps it a
// lower bound.
func (dc *denyCache) remember(c *call, allowed bool, units int64, st []state, sent time.Time) {
	if dc == nil {
		return
	}
	at := sent.UnixMicro()
	for i, p := range c.params {
		used := st[i].used
		if allowed {
			used += p.interval * p.cost * units
		}
		if p.admits(used) {
			if dc.size.Load() > 0 {
				dc.forget(c.keys[i])
			}
			continue
		}
		wait := p.viewOf(used, false).wait
		dc.put(c.keys[i], denyEntry{
			interval: p.interval, burst: p.burst, used: used,
			at: at, until: at + min(wait, dc.ttl),
		})
	}
}

func (dc *denyCache) put(key string, e denyEntry) {
	sh := dc.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.entries[key]; ok {
		old.release()
	} else {
		dc.size.Add(1)
	}
	sh.entries[key] = e
	if len(sh.entries) < sh.sweepAt {
		return
	}
	// Entries answer a second at most: drop the spent ones once the shard has doubled.
	for k, old := range sh.entries {
		if e.at >= old.until && old.probe == nil {
			delete(sh.entries, k)
			dc.size.Add(-1)
		}
	}
	sh.sweepAt = max(2*len(sh.entries), minSweep)
}

func (dc *denyCache) forget(key string) {
	sh := dc.shard(key)
	sh.mu.RLock()
	_, ok := sh.entries[key]
	sh.mu.RUnlock()
	if !ok {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.entries[key]; ok {
		old.release()
		delete(sh.entries, key)
		dc.size.Add(-1)
	}
}

// release wakes the requests waiting on the entry's probe: there is news.
func (e denyEntry) release() {
	if e.probe != nil {
		close(e.probe)
	}
}
