package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saasbase/saasbase/internal/platform/cache"
	"github.com/saasbase/saasbase/internal/platform/clock"
)

const ttl = 500 * time.Millisecond

// source is the store a cache reads through: a value per key, a count of loads, and an
// optional gate each load waits on, so a test can hold a load in flight.
type source struct {
	mu      sync.Mutex
	vals    map[string]int
	err     error
	loads   atomic.Int64
	started chan struct{} // when not nil, told of each load as it starts
	gate    chan struct{} // when not nil, each load waits for it to close
}

func newSource() *source { return &source{vals: map[string]int{}} }

func (s *source) set(k string, v int) {
	s.mu.Lock()
	s.vals[k] = v
	s.mu.Unlock()
}

func (s *source) load(ctx context.Context, k string) (int, error) {
	s.loads.Add(1)
	s.mu.Lock()
	v, err, started, gate := s.vals[k], s.err, s.started, s.gate
	s.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("the load's context is done: %w", err)
	}
	return v, err
}

func get(t *testing.T, c *cache.Cache[string, int], k string, want int) {
	t.Helper()
	got, err := c.Get(t.Context(), k)
	if err != nil || got != want {
		t.Fatalf("Get(%q) = %d, %v; want %d", k, got, err, want)
	}
}

func TestHitAndExpiry(t *testing.T) {
	src, clk := newSource(), clock.NewFixed(time.Now())
	c := cache.New(clk, ttl, src.load)
	src.set("a", 1)
	get(t, c, "a", 1)
	src.set("a", 2)
	clk.Advance(ttl - time.Nanosecond)
	get(t, c, "a", 1) // fresh: not read again
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d loads within the TTL, want 1", n)
	}
	clk.Advance(time.Nanosecond)
	get(t, c, "a", 2) // expired at exactly TTL
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestKeysAreApart(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), ttl, src.load)
	src.set("a", 1)
	src.set("b", 2)
	get(t, c, "a", 1)
	get(t, c, "b", 2)
	c.Invalidate("a")
	src.set("b", 3)
	get(t, c, "b", 2) // invalidating a leaves b cached
}

func TestInvalidate(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), ttl, src.load)
	src.set("a", 1)
	get(t, c, "a", 1)
	src.set("a", 2)
	c.Invalidate("a")
	get(t, c, "a", 2)
	c.Invalidate("never cached") // harmless
}

func TestZeroTTLCachesNothing(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), 0, src.load)
	get(t, c, "a", 0)
	get(t, c, "a", 0)
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), ttl, src.load)
	boom := errors.New("boom")
	src.err = boom
	if _, err := c.Get(t.Context(), "a"); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the load's error as is", err)
	}
	src.err = nil
	src.set("a", 1)
	get(t, c, "a", 1)
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: the error was cached", n)
	}
}

// hold makes src's loads wait until the returned function is called, and answers a channel
// told as each load starts.
func hold(src *source) (started <-chan struct{}, release func()) {
	s, g := make(chan struct{}, 16), make(chan struct{})
	src.mu.Lock()
	src.started, src.gate = s, g
	src.mu.Unlock()
	return s, func() {
		src.mu.Lock()
		src.started, src.gate = nil, nil
		src.mu.Unlock()
		close(g)
	}
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), ttl, src.load)
	src.set("a", 7)
	started, release := hold(src)

	const callers = 8
	// The leader's context is cancelled while its load runs: the load goes on, and the
	// callers sharing it get its value, not the leader's cancellation.
	leaderCtx, cancel := context.WithCancel(t.Context())
	type result struct {
		v   int
		err error
	}
	results := make(chan result, callers)
	go func() {
		v, err := c.Get(leaderCtx, "a")
		results <- result{v, err}
	}()
	<-started
	for range callers - 1 {
		go func() {
			v, err := c.Get(t.Context(), "a")
			results <- result{v, err}
		}()
	}
	for c.Waiters("a") != callers-1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	release()
	for range callers {
		if r := <-results; r.v != 7 || r.err != nil {
			t.Fatalf("a caller got %d, %v; want 7", r.v, r.err)
		}
	}
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d loads for %d concurrent misses, want 1", n, callers)
	}
	get(t, c, "a", 7) // and it was stored
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
}

func TestLoadThatRacedInvalidateIsNotStored(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), ttl, src.load)
	src.set("a", 1)
	started, release := hold(src)
	done := make(chan int)
	go func() {
		v, _ := c.Get(t.Context(), "a")
		done <- v
	}()
	<-started // the load has read 1...
	src.set("a", 2)
	c.Invalidate("a") // ...and the value changed under it
	release()
	if v := <-done; v != 1 {
		t.Fatalf("the racing caller got %d, want what its load read, 1", v)
	}
	get(t, c, "a", 2)
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: the stale load was stored", n)
	}
}

func TestMissAfterInvalidateDoesNotJoinTheStaleLoad(t *testing.T) {
	src := newSource()
	c := cache.New(clock.NewFixed(time.Now()), ttl, src.load)
	src.set("a", 1)
	started, release := hold(src)
	stale := make(chan int)
	go func() {
		v, _ := c.Get(t.Context(), "a")
		stale <- v
	}()
	<-started
	src.mu.Lock()
	src.started, src.gate = nil, nil // the next load runs through
	src.vals["a"] = 2
	src.mu.Unlock()
	c.Invalidate("a")
	get(t, c, "a", 2) // a load of its own, while the stale one is still held
	release()
	if v := <-stale; v != 1 {
		t.Fatalf("the stale load answered %d, want 1", v)
	}
	get(t, c, "a", 2) // the stale load did not overwrite the fresh entry
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestExpiredEntriesAreSwept(t *testing.T) {
	src := newSource()
	clk := clock.NewFixed(time.Now())
	c := cache.New(clk, ttl, src.load)
	const keys = 1000
	for i := range keys {
		if _, err := c.Get(t.Context(), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Live entries are never swept: the map may grow as far as the keys read within a TTL.
	if n := c.Len(); n != keys {
		t.Fatalf("%d entries, want %d", n, keys)
	}
	// Keys read once and never again do not pile up: every later round of fresh keys
	// sweeps the expired ones, so the map stays within about twice a TTL's keys.
	for round := range 10 {
		clk.Advance(ttl)
		for i := range keys {
			if _, err := c.Get(t.Context(), fmt.Sprint(round, "-", i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := c.Len(); n > 2*keys {
			t.Fatalf("round %d: %d entries for %d live keys", round, n, keys)
		}
	}
	// An expired entry that is asked for again is reloaded, not kept.
	clk.Advance(ttl)
	get(t, c, "0", 0)
}

func TestPanickingLoadReleasesItsWaiters(t *testing.T) {
	clk := clock.NewFixed(time.Now())
	started, gate := make(chan struct{}), make(chan struct{})
	var loads atomic.Int64
	c := cache.New(clk, ttl, func(context.Context, string) (int, error) {
		if loads.Add(1) == 1 {
			close(started)
			<-gate
			panic("load failed")
		}
		return 1, nil
	})
	leader := make(chan any)
	go func() {
		defer func() { leader <- recover() }()
		c.Get(t.Context(), "a")
	}()
	<-started
	waiter := make(chan error)
	go func() {
		_, err := c.Get(t.Context(), "a")
		waiter <- err
	}()
	for c.Waiters("a") != 1 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	if p := <-leader; p != "load failed" {
		t.Fatalf("the leader recovered %v, want its load's panic", p)
	}
	if err := <-waiter; err == nil {
		t.Fatal("a caller waiting on a load that panicked got no error")
	}
	get(t, c, "a", 1) // the next miss loads afresh
}

func TestFreshHitDoesNotAllocate(t *testing.T) {
	type value struct {
		name string
		n    [4]int64
	}
	c := cache.New(clock.System{}, time.Hour, func(context.Context, [16]byte) (value, error) {
		return value{name: "x"}, nil
	})
	ctx, k := context.Background(), [16]byte{1}
	if _, err := c.Get(ctx, k); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { c.Get(ctx, k) }); n != 0 {
		t.Fatalf("a fresh hit allocates %.0f times", n)
	}
}

func BenchmarkHit(b *testing.B) {
	c := cache.New(clock.System{}, time.Hour, func(context.Context, [16]byte) (int, error) { return 1, nil })
	ctx := context.Background()
	c.Get(ctx, [16]byte{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Get(ctx, [16]byte{})
		}
	})
}
