package ratelimit

import (
	"strconv"
	"sync/atomic"
)

// A rate lease is units Redis has already spent from every bucket of a limit set (the
// limits a request is decided against, together) and that this replica admits locally, one
// request each, with no call. Redis grants them with a request that asks: g ≥ 1 units, at
// most half of what the tightest bucket has left beyond this request, so near exhaustion
// every request is decided in Redis again. Units never outlive leaseTTL: the rest is
// dropped, not refunded (a refund would be a second write racing the other replicas' spends,
// for units worth a fraction of a second of the rate).
type rateLease struct {
	units   int64   // spent in Redis, not yet admitted
	expires int64   // mono µs
	at      int64   // mono µs when the call that granted the last units was sent
	used    []int64 // per limit: µs in use in Redis after that grant

	// The local rate, measured over windows of leaseWindow, sets how many units to ask for.
	winStart, winCount int64
	wanted, most       int64
	ready              chan struct{} // while a call asking for units is out; closed when answered
	seen               int64

	policy atomic.Pointer[policyHeader] // the RateLimit-Policy field, once a decision has set it
}

const (
	leaseTTL    = 100_000 // µs a lease's units live
	leaseWindow = 100_000 // µs over which the local rate is measured
	leaseAhead  = 20_000  // µs of the local rate asked for at once
	maxLease    = 64      // units at once, at most
)

// appendLeaseKey appends the name of the call's limit set to dst: its buckets, and the limits
// they were taken under, so that a changed limit is never answered from units spent under the
// old one.
func (c *call) appendLeaseKey(dst []byte) []byte {
	for i, k := range c.keys[:len(c.params)] {
		dst = append(dst, k...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, c.params[i].interval, 10)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, c.params[i].burst, 10)
		dst = append(dst, ' ')
	}
	return dst
}

// leaseFor is the call's limit set's lease, made if new; sh.mu is held.
func (h *hot) leaseFor(sh *hotShard, c *call, now int64) *rateLease {
	// The key is built on the stack and looked up without becoming a string: only a new
	// lease allocates one.
	var buf [256]byte
	key := c.appendLeaseKey(buf[:0])
	le := sh.leases[string(key)]
	if le == nil {
		most := int64(maxLease)
		for _, p := range c.params {
			most = min(most, p.burst/4) // a lease is a small part of any burst
		}
		le = &rateLease{used: make([]int64, len(c.params)), winStart: now, wanted: 1, most: max(most, 1)}
		if len(sh.leases) >= sh.sweep {
			for k, old := range sh.leases {
				if now-old.seen > 10*leaseWindow && old.ready == nil {
					h.expired(old)
					delete(sh.leases, k)
				}
			}
			sh.sweep = max(2*len(sh.leases), minSweep)
		}
		sh.leases[string(key)] = le
	}
	le.seen = now
	le.winCount++
	if d := now - le.winStart; d >= leaseWindow {
		le.wanted = min(max((le.winCount*leaseAhead+d-1)/d, 1), le.most)
		le.winStart, le.winCount = now, 0
	}
	if now >= le.expires {
		h.expired(le)
	}
	return le
}

// expired drops the units of a lease past its TTL, counting them; sh.mu is held.
func (h *hot) expired(le *rateLease) {
	if le.units > 0 {
		h.l.metrics.leaseLost.Add(float64(le.units))
		le.units = 0
	}
}

// fromLease admits the call from its limit set's lease when it has units and every capped
// limit's claim has room. Otherwise it answers the call's lease for ask to refill, and, when
// a call asking for units is already out, the channel to wait on for its answer.
func (h *hot) fromLease(c *call) (d Decision, ok bool, wait <-chan struct{}) {
	sh := h.shard(c.limits[0].Scope)
	now := mono()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	le := h.leaseFor(sh, c, now)
	c.lease = le
	if le.units == 0 || c.capped > 0 && !h.acquire(sh, c, now, true) {
		return Decision{}, false, le.ready
	}
	le.units--
	// What Redis holds, less what has refilled since; the units left are this replica's to
	// admit, so they count as remaining. An estimate: other replicas spend meanwhile.
	elapsed := now - le.at
	for i, p := range c.params {
		c.states[i] = state{used: max(max(le.used[i]-elapsed, 0)-(le.units+1)*p.interval, 0), inflight: -1}
	}
	d = c.decide(true, c.states)
	if c.capped > 0 {
		d.hold = &hold{l: h.l, scope: c.limits[0].Scope, uses: c.uses}
	}
	return d, true, nil
}

// refill asks for the lease's wanted units with this call, unless another call is asking
// already; sh.mu is held.
func (c *call) refill() int64 {
	le := c.lease
	if le == nil || le.ready != nil || le.wanted <= 1 {
		return 1
	}
	le.ready = make(chan struct{})
	c.refilling = true
	return le.wanted
}

// settleLease adds the units Redis spent beyond this request to the lease; sh.mu is held.
func (h *hot) settleLease(c *call, allowed bool, units int64, st []state, sent int64) {
	le := c.lease
	if le == nil {
		return
	}
	if c.refilling {
		close(le.ready)
		le.ready, c.refilling = nil, false
	}
	if !allowed || units <= 1 {
		return
	}
	if le.units == 0 || sent >= le.expires {
		// Units merged into a live lease keep its expiry: none outlives its TTL by more.
		h.expired(le)
		le.expires = sent + leaseTTL
	}
	le.units += units - 1
	le.at = sent
	for i, p := range c.params {
		le.used[i] = st[i].used + units*p.interval
	}
}
