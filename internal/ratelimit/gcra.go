package ratelimit

// The arithmetic of one GCRA bucket, in whole microseconds. The Lua script applies the same
// test (admits) in Redis; everything a client is told is derived here from what the script
// returns, so the headers, the deny cache and the in-process fallback share one definition.

// state is what a decision read of one limit before the request.
type state struct {
	used     int64 // µs of capacity in use: TAT−now, clamped to [0, τ]
	inflight int64 // requests in flight before this one; -1 when the limit has no cap
}

// usedAt clamps a stored TAT into the bucket: one in the past is a full bucket, one beyond
// the capacity (the limit was lowered since) an empty one.
func (p params) usedAt(tat, now int64) int64 {
	return min(max(tat-now, 0), p.tau())
}

// admits reports whether a bucket with used µs in use has room for this request's cost.
func (p params) admits(used int64) bool {
	return used+p.interval*p.cost <= p.tau()
}

// view is what a client is told of one limit.
type view struct {
	remaining int64 // whole tokens left
	wait      int64 // µs until a request of this cost is allowed; 0 if it is now
	full      int64 // µs until the bucket is full again
}

// viewOf is the limit's view after the request, spent or not. Integer division floors, so
// remaining never promises a token the next request would not get.
func (p params) viewOf(used int64, spent bool) view {
	if spent {
		used += p.interval * p.cost
	}
	return view{
		remaining: (p.tau() - used) / p.interval,
		wait:      max(used+p.interval*p.cost-p.tau(), 0),
		full:      used,
	}
}

// reset is the draft header's t: until the next request is allowed when it would be denied
// now, else until the bucket is full.
func (v view) reset() int64 {
	if v.wait > 0 {
		return v.wait
	}
	return v.full
}
