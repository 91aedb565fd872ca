package ratelimit

import "fmt"

// call is one decision being made: the limits, in the script's units, and their keys.
type call struct {
	limits []Limit
	params []params
	// keys holds the n buckets, then the in-flight set of each limit with a cap, in order:
	// the layout the script reads.
	keys   []string
	states []state // what the decision read of each limit
	capped int     // how many limits cap concurrency
	// closedBy is the first limit that fails closed, by its own choice or by default, or
	// -1: one limit that must not be guessed is enough to deny while Redis is away.
	closedBy int
	probes   []probe // the deny cache's waiters this call answers for
	uses     []use   // the claims of the capped limits, in order
	// leasable: every cost is 1, so the limit set can be admitted from a rate lease.
	leasable  bool
	lease     *rateLease // the limit set's, once looked up
	refilling bool       // this call asks for the lease's units
	peek      bool       // decide, spend nothing (Limiter.Peek)

	// Room for a request's usual few limits, so that a decision allocates all this at once.
	paramsBuf [inline]params
	keysBuf   [inline + 1]string
	statesBuf [inline]state
	usesBuf   [inline]use
}

// inline is how many limits a call holds without allocating more.
const inline = 3

// buf is buf[:n] when it has room, else a new slice.
func buf[T any](b []T, n int) []T {
	if n <= len(b) {
		return b[:n]
	}
	return make([]T, n)
}

// prepare checks the limits of one decision and names their keys:
// <prefix>{<scope>}:r:<policy>:<id> for a bucket, :cl: for the claims of in-flight slots
// (a hash; :c: was the sorted set of requests before claims).
func (l *Limiter) prepare(limits []Limit) (*call, error) {
	n := len(limits)
	if n == 0 || n > maxLimits {
		return nil, fmt.Errorf("%w: %d limits in one decision, want 1 to %d", ErrInvalidLimit, n, maxLimits)
	}
	c := &call{limits: limits, closedBy: -1, leasable: true}
	c.params, c.states = buf(c.paramsBuf[:], n), buf(c.statesBuf[:], n)
	for i, lim := range limits {
		p, err := lim.params()
		if err != nil {
			return nil, err
		}
		if lim.Scope != limits[0].Scope {
			return nil, fmt.Errorf("%w: policy %q: scope %q differs from %q; one decision is one scope", ErrInvalidLimit, lim.Policy, lim.Scope, limits[0].Scope)
		}
		for _, prev := range limits[:i] {
			if prev.Policy == lim.Policy && prev.ID == lim.ID {
				return nil, fmt.Errorf("%w: policy %q, id %q twice in one decision", ErrInvalidLimit, lim.Policy, lim.ID)
			}
		}
		mode := lim.Failure
		if mode == FailDefault {
			mode = l.opts.FailureMode
		}
		if mode == FailClosed && c.closedBy < 0 {
			c.closedBy = i
		}
		if p.maxConc > 0 {
			c.capped++
		}
		if p.cost != 1 {
			c.leasable = false
		}
		c.params[i] = p
	}
	c.keys = buf(c.keysBuf[:], n+c.capped)[:n]
	for i, lim := range limits {
		c.keys[i] = l.key(lim, ":r:")
	}
	for i, lim := range limits {
		if c.params[i].maxConc > 0 {
			c.keys = append(c.keys, l.key(lim, ":cl:"))
		}
	}
	return c, nil
}

func (l *Limiter) key(lim Limit, kind string) string {
	return l.opts.Prefix + "{" + string(lim.Scope) + "}" + kind + lim.Policy + ":" + lim.ID
}

// args are the script's ARGV for this call, asking for units from each bucket (1 unless
// the call takes a lease), and for the claims in c.uses.
func (c *call) args(units int64, replica string, lease int64) []any {
	args := make([]any, 0, 4+4*len(c.params)+2*len(c.uses))
	args = append(args, len(c.params), units)
	for _, p := range c.params {
		args = append(args, p.interval, p.burst, p.cost, p.maxConc)
	}
	args = append(args, replica, lease)
	for _, u := range c.uses {
		args = append(args, u.need, u.want)
	}
	return args
}

// concKeys are the in-flight sets of the capped limits.
func (c *call) concKeys() []string { return c.keys[len(c.params):] }

// parseReply reads the script's answer: the units spent from each bucket, one state per
// limit, and per capped limit the claim's slots, version and µs to live.
func (c *call) parseReply(vals []int64) (allowed bool, units int64, st []state, claims []int64, err error) {
	n := len(c.params)
	if len(vals) != 2+2*n+3*len(c.uses) {
		return false, 0, nil, nil, fmt.Errorf("ratelimit: script answered %d values for %d limits", len(vals), n)
	}
	for i := range c.states {
		c.states[i] = state{used: vals[2+2*i], inflight: vals[3+2*i]}
	}
	return vals[0] == 1, vals[1], c.states, vals[2+2*n:], nil
}
