package ratelimit

import (
	"context"
	"sync/atomic"
)

// lease is a request's slots in the in-flight sets of its capped limits.
type lease struct {
	l      *Limiter
	scope  Scope
	keys   []string
	member string // the request's id in the Redis sets; "" when taken locally
	local  bool
	done   atomic.Bool
}

// release gives the slots back, once. A Redis release that fails is not retried: the slot
// expires with its lease.
func (ls *lease) release(ctx context.Context) {
	if ls.done.Swap(true) {
		return
	}
	if ls.local {
		ls.l.local.release(ls.scope, ls.keys)
		return
	}
	if ls.l.breaker.isOpen() {
		return
	}
	// The request's context may be cancelled by now (the client left); the slot must still
	// be given back.
	_, err := ls.l.redis.do(context.WithoutCancel(ctx), ls.l.redis.deadlines.get(), ls.l.release, ls.keys, []any{ls.member})
	if err != nil {
		ls.l.breaker.failure()
	}
}
