package ratelimit

import "sync/atomic"

// hold is a request's in-flight slots in the claims of its capped limits, or in the
// in-process limiter when it was decided without Redis.
type hold struct {
	l     *Limiter
	scope Scope
	uses  []use    // the claims it counts in
	keys  []string // the in-process limiter's keys, when local
	local bool
	done  atomic.Bool
}

// release gives the slots back, once. It costs no Redis call: the claim stays, for the next
// request, until the maintainer gives back what is no longer needed.
func (hd *hold) release() {
	if hd.done.Swap(true) {
		return
	}
	if hd.local {
		hd.l.local.release(hd.scope, hd.keys)
		return
	}
	hd.l.hot.release(hd.scope, hd.uses)
}
