// Package cache holds values read through a load function for a bounded time, so that a
// value every request needs (a tenant's record, a plan's limit) costs its store at most one
// read per key and TTL, however many requests ask.
package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
)

// Cache holds values by key for at most TTL, read through load on a miss. Concurrent misses
// of one key share one load, and Invalidate(k) drops k's entry so that a load that raced the
// change is not stored. Use New; the zero Cache is not usable.
type Cache[K comparable, V any] struct {
	clk  clock.Clock
	ttl  time.Duration
	load func(ctx context.Context, k K) (V, error)

	mu      sync.RWMutex
	entries map[K]entry[V]
	// The loads in flight, by key. A map of our own rather than x/sync/singleflight: that
	// needs a string key, which for a uuid.UUID costs an allocation per miss, and it would
	// need a second lock besides mu to know whether a load was invalidated.
	flights map[K]*flight[V]
	sweepAt int // len(entries) at which the next store first drops the expired entries
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// flight is one load that callers missing its key wait for.
type flight[V any] struct {
	done    chan struct{} // closed when v and err are set
	v       V
	err     error
	waiters int // callers that joined the leader's load, for tests
}

// minSweep keeps a small cache from sweeping on every store.
const minSweep = 64

// errLoadAborted is what the callers sharing a load hear when it panicked (or called
// runtime.Goexit): the panic itself carries on up the leader's stack only.
var errLoadAborted = errors.New("cache: the shared load panicked")

// New returns a Cache that answers a value for at most ttl after the load that read it
// began, reading it through load on a miss. Time is clk's. A ttl of 0 caches nothing but
// still shares concurrent loads.
func New[K comparable, V any](clk clock.Clock, ttl time.Duration, load func(ctx context.Context, k K) (V, error)) *Cache[K, V] {
	if clk == nil || load == nil || ttl < 0 {
		panic("cache.New: a clock, a load function and a TTL ≥ 0 are required")
	}
	return &Cache[K, V]{
		clk: clk, ttl: ttl, load: load,
		entries: make(map[K]entry[V]),
		flights: make(map[K]*flight[V]),
		sweepAt: minSweep,
	}
}

// Get answers k's value, from the cache while fresh, else from load; a load's error is
// answered to every caller that shared it and is not cached. The load runs without ctx's
// cancellation, so that one caller giving up does not fail the others waiting on it.
func (c *Cache[K, V]) Get(ctx context.Context, k K) (V, error) {
	now := c.clk.Now()
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	return c.miss(ctx, k, now)
}

func (c *Cache[K, V]) miss(ctx context.Context, k K, now time.Time) (V, error) {
	c.mu.Lock()
	// Another caller's load may have landed since the read lock was released.
	if e, ok := c.entries[k]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.v, nil
	}
	if f, ok := c.flights[k]; ok {
		f.waiters++
		c.mu.Unlock()
		<-f.done
		return f.v, f.err
	}
	f := &flight[V]{done: make(chan struct{})}
	c.flights[k] = f
	c.mu.Unlock()

	c.run(ctx, k, f, now)
	return f.v, f.err
}

// run loads k for flight f, which started at now, and stores the value unless k was
// invalidated meanwhile.
func (c *Cache[K, V]) run(ctx context.Context, k K, f *flight[V], now time.Time) {
	returned := false
	defer func() {
		if !returned {
			var zero V
			f.v, f.err = zero, errLoadAborted
		}
		c.mu.Lock()
		// Invalidate removes the flight of its key: then what f read may predate the change.
		if c.flights[k] == f {
			delete(c.flights, k)
			if f.err == nil {
				// Expiry counts from before the read, so no value is answered more than
				// TTL after the store was read.
				c.store(k, entry[V]{v: f.v, expires: now.Add(c.ttl)})
			}
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.v, f.err = c.load(context.WithoutCancel(ctx), k)
	returned = true
}

// store puts e under k; c.mu is held. When the map has grown to sweepAt it first drops the
// expired entries, so keys that are never asked for again (a tenant gone quiet) do not pile
// up, at an amortised constant cost per store: the map holds at most about twice the keys
// read within one TTL, or minSweep.
func (c *Cache[K, V]) store(k K, e entry[V]) {
	if len(c.entries) >= c.sweepAt {
		now := c.clk.Now()
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		c.sweepAt = max(minSweep, 2*len(c.entries))
	}
	c.entries[k] = e
}

// Invalidate drops k's entry, for the replica that changed k's value. A load of k in flight
// is still answered to the callers already waiting on it, but is not stored, and later
// misses start a load of their own.
func (c *Cache[K, V]) Invalidate(k K) {
	c.mu.Lock()
	delete(c.entries, k)
	delete(c.flights, k)
	c.mu.Unlock()
}
