package ratelimit

import (
	"context"
	"sync/atomic"
	"time"
)

// deadlines hands out contexts that expire a timeout from now, give or take a millisecond,
// shared by every call of that millisecond: a hard timeout without a timer per decision,
// which would cost more than the Redis call's own allocations.
type deadlines struct {
	timeout time.Duration
	cur     atomic.Pointer[sharedDeadline]
}

type sharedDeadline struct {
	ctx     context.Context
	cancel  context.CancelFunc // never needed: the context releases itself when it expires
	expires time.Time
}

const deadlineGrain = time.Millisecond

// get answers a context that expires between timeout and timeout+1ms from now.
func (d *deadlines) get() context.Context {
	now := time.Now()
	if c := d.cur.Load(); c != nil && c.expires.Sub(now) >= d.timeout {
		return c.ctx
	}
	expires := now.Add(d.timeout + deadlineGrain)
	ctx, cancel := context.WithDeadline(context.Background(), expires)
	d.cur.Store(&sharedDeadline{ctx: ctx, cancel: cancel, expires: expires})
	return ctx
}
