package ratelimit

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// Decision is the answer for one request.
type Decision struct {
	Allowed bool
	// Policy names the limit that decided: the one that denied (with ".concurrency" when it
	// was the cap on requests in flight), else the most restrictive, the one nearest denial.
	Policy     string
	Remaining  int64         // requests left under that limit, after this one; an estimate when admitted from a rate lease
	ResetAfter time.Duration // the draft's t: until the next request is allowed if it would be denied now, else until the limit is full
	RetryAfter time.Duration // when denied, until this request could be allowed
	Degraded   bool          // decided without Redis: in-process (fail open) or denied (fail closed)

	call    *call
	binding int   // the limit whose numbers the RateLimit header shows
	capped  bool  // the binding limit's cap on requests in flight denied; Remaining and ResetAfter are still its bucket's
	hold    *hold // the in-flight slots this request holds, if any limit caps concurrency
}

const concurrencySuffix = ".concurrency"

// decide turns what the limits' states were before the request into the decision.
func (c *call) decide(allowed bool, st []state) Decision {
	d := Decision{Allowed: allowed, call: c, binding: -1}
	var b view
	for i, p := range c.params {
		v := p.viewOf(st[i].used, allowed)
		switch {
		case allowed:
			// The most restrictive: the fewest remaining, then the longest to wait.
			if d.binding < 0 || v.remaining < b.remaining || v.remaining == b.remaining && v.reset() > b.reset() {
				d.binding, b = i, v
			}
		case !p.admits(st[i].used):
			// Of the limits that deny, the one that makes the client wait the longest.
			if d.binding < 0 || v.wait > b.wait {
				d.binding, b = i, v
			}
		}
	}
	d.Remaining, d.ResetAfter = b.remaining, micros(b.reset())
	if allowed {
		d.Policy = c.limits[d.binding].Policy
		return d
	}
	if d.binding >= 0 {
		d.Policy, d.RetryAfter = c.limits[d.binding].Policy, micros(b.wait)
		return d
	}
	// No bucket denied, so a cap on requests in flight did. When a slot frees is unknown:
	// Retry-After hints a second, and the RateLimit field has no t.
	for i, p := range c.params {
		if p.maxConc > 0 && st[i].inflight >= p.maxConc {
			d.binding = i
			break
		}
	}
	if d.binding < 0 {
		d.binding = 0 // not reached with a consistent reply; deny under the first limit
	}
	v := c.params[d.binding].viewOf(st[d.binding].used, false)
	d.Policy, d.capped = c.limits[d.binding].Policy+concurrencySuffix, true
	d.Remaining, d.ResetAfter, d.RetryAfter = v.remaining, time.Second, time.Second
	return d
}

// deniedClosed is the decision of a call that must not be guessed while Redis is away.
func (c *call) deniedClosed() Decision {
	return Decision{
		Policy: c.limits[c.closedBy].Policy, ResetAfter: time.Second, RetryAfter: time.Second,
		Degraded: true, call: c, binding: c.closedBy,
	}
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

// ceilSeconds rounds up to whole seconds, as the headers count.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// SetHeaders writes the IETF draft fields (draft-ietf-httpapi-ratelimit-headers).
// RateLimit-Policy lists every limit of the request: a bucket with q its burst and w the
// seconds it takes to refill from empty, and a cap on requests in flight as a policy of its
// own, "<policy>.concurrency", with q the cap and qu="concurrent-requests" (the draft's unit
// for it; a cap has no window, so no w). RateLimit is the policy that decided: the limit
// nearest denial, with r the requests left and t the seconds to wait or to refill, or the
// one that denied; a cap that denied says r=0 and no t (optional in the draft), since when a
// slot frees is unknown.
func (d Decision) SetHeaders(h http.Header) {
	if d.call == nil {
		return
	}
	// Both values in one allocation, under the names spelled in Go's canonical form (header
	// names are case-insensitive): what Set would store, without its copy of each.
	vals := new([2]string)
	vals[0] = d.call.policyHeader()
	h["Ratelimit-Policy"] = vals[0:1:1]

	var b [128]byte
	buf := b[:0]
	if d.capped {
		buf = appendItem(buf, d.call.limits[d.binding].Policy, concurrencySuffix)
		vals[1] = string(append(buf, ";r=0"...))
		h["Ratelimit"] = vals[1:2:2]
		return
	}
	buf = appendItem(buf, d.call.limits[d.binding].Policy, "")
	buf = append(buf, ";r="...)
	buf = strconv.AppendInt(buf, d.Remaining, 10)
	buf = append(buf, ";t="...)
	buf = strconv.AppendInt(buf, ceilSeconds(d.ResetAfter), 10)
	vals[1] = string(buf)
	h["Ratelimit"] = vals[1:2:2]
}

// policyHeader is the RateLimit-Policy field of the call's limits. It depends on nothing but
// the limits, so a call of a leased limit set reuses the text its lease keeps.
func (c *call) policyHeader() string {
	if c.lease == nil {
		return string(c.appendPolicy(make([]byte, 0, 64)))
	}
	if ph := c.lease.policy.Load(); ph != nil && ph.matches(c) {
		return ph.value
	}
	ph := &policyHeader{value: string(c.appendPolicy(make([]byte, 0, 64))), maxConc: make([]int64, len(c.params))}
	for i, p := range c.params {
		ph.maxConc[i] = p.maxConc
	}
	c.lease.policy.Store(ph)
	return ph.value
}

// policyHeader is a lease's RateLimit-Policy field. A lease's key names its limits' buckets,
// intervals and bursts, but not their caps on requests in flight, which the field shows too.
type policyHeader struct {
	value   string
	maxConc []int64
}

func (ph *policyHeader) matches(c *call) bool {
	if len(ph.maxConc) != len(c.params) {
		return false
	}
	for i, p := range c.params {
		if ph.maxConc[i] != p.maxConc {
			return false
		}
	}
	return true
}

func (c *call) appendPolicy(buf []byte) []byte {
	for i, lim := range c.limits {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		p := c.params[i]
		buf = appendItem(buf, lim.Policy, "")
		buf = append(buf, ";q="...)
		buf = strconv.AppendInt(buf, p.burst, 10)
		buf = append(buf, ";w="...)
		buf = strconv.AppendInt(buf, ceilSeconds(micros(p.tau())), 10)
		if p.maxConc > 0 {
			buf = appendItem(append(buf, ", "...), lim.Policy, concurrencySuffix)
			buf = append(buf, ";q="...)
			buf = strconv.AppendInt(buf, p.maxConc, 10)
			buf = append(buf, `;qu="concurrent-requests"`...)
		}
	}
	return buf
}

// appendItem appends a policy name and suffix as a structured-field string; names are
// checked to need no escaping.
func appendItem(buf []byte, name, suffix string) []byte {
	buf = append(buf, '"')
	buf = append(buf, name...)
	buf = append(buf, suffix...)
	return append(buf, '"')
}

// Err is nil when the request is allowed, else the error to answer it with: a 429
// rate_limited problem naming the policy, with Retry-After.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return newDeniedError(d.Policy, d.RetryAfter, d.Degraded)
}

// Release gives back the request's in-flight slots; call it when the request is done.
// Without a cap it does nothing; a second call does nothing either. It never waits: the
// slots go back to this replica's claim, and to Redis in the background.
func (d Decision) Release(ctx context.Context) {
	if d.hold != nil {
		d.hold.release()
	}
}
