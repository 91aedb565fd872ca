package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/saasbase/saasbase/internal/platform/clock"
)

// breaker stops calling a Redis that keeps failing: after threshold failures in a row it
// opens, and decisions go straight to the failure mode instead of each waiting out the
// timeout. After cooldown one call goes through as a probe (half-open); its success closes
// the breaker, its failure opens it for another cooldown. The closed path is two atomic loads.
type breaker struct {
	clock     clock.Clock
	threshold int32
	cooldown  time.Duration
	onChange  func(open bool)

	state    atomic.Int32 // closed, open or halfOpen
	failures atomic.Int32 // in a row, while closed

	mu       sync.Mutex
	openedAt time.Time
}

const (
	closed int32 = iota
	open
	halfOpen
)

// allow reports whether this call may go to Redis. While half-open only the probe may.
func (b *breaker) allow() bool {
	if b.state.Load() == closed {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == open && b.clock.Now().Sub(b.openedAt) >= b.cooldown {
		b.state.Store(halfOpen)
		return true
	}
	return b.state.Load() == closed
}

// success records an answer from Redis.
func (b *breaker) success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if b.state.Load() == closed {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Swap(closed) != closed {
		b.onChange(false)
	}
}

// failure records a call that Redis did not answer in time.
func (b *breaker) failure() {
	if b.state.Load() == closed && b.failures.Add(1) < b.threshold {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.openedAt = b.clock.Now()
	b.failures.Store(0)
	if b.state.Swap(open) == closed {
		b.onChange(true)
	}
}

// abandon records a call its caller gave up on, which says nothing of Redis: a probe
// abandoned leaves the breaker open with its cooldown already served, so the next call
// probes again.
func (b *breaker) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.CompareAndSwap(halfOpen, open)
}

// isOpen reports whether decisions currently skip Redis.
func (b *breaker) isOpen() bool { return b.state.Load() != closed }
