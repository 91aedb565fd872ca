package main

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
)

// An action is one kind of request of the mix, drawn with probability weight/total.
type action struct {
	name   string
	weight int
	// off, once set, takes the action out of the draw: the service showed it does not offer
	// it (OFREP not deployed, no payment provider). Nil means always on.
	off *atomic.Bool
	run func(ctx context.Context, r *rand.Rand, t *tenant)
}

func (a *action) on() bool { return a.off == nil || !a.off.Load() }

// A mix is the weighted set of actions the workers draw from. At least one action must have
// no off switch, so there is always something to draw.
type mix []action

// pick draws an action by weight among those still on; the weights of those taken out are
// spread over the rest in proportion.
func (m mix) pick(r *rand.Rand) *action {
	total := 0
	for i := range m {
		if m[i].on() {
			total += m[i].weight
		}
	}
	n := r.IntN(total)
	for i := range m {
		if !m[i].on() {
			continue
		}
		if n < m[i].weight {
			return &m[i]
		}
		n -= m[i].weight
	}
	panic("unreachable: n < total")
}
