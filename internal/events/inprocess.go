package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// InProcess is the default transport: the relay hands events straight to this process's
// consumers, with no broker in between. Having no broker to keep them, Publish returns only
// once every consumer group has settled every event (applied it, recognised a duplicate, or
// parked it for a retry in the database); until then the relay does not mark them published,
// so an event in flight when the process dies is published again after the restart.
//
// Each group runs its events in lanes, a tenant always in the same lane: a tenant's events
// are applied in order while other tenants' go ahead in the other lanes.
type InProcess struct {
	lanes  int
	names  []string
	mu     sync.Mutex
	groups map[string]*inGroup
}

type inGroup struct {
	sub     *inSub        // nil while no consumer runs
	changed chan struct{} // closed (and replaced) when sub changes
}

// inSub is one running Consume call.
type inSub struct {
	lanes []chan laneWork
	done  chan struct{} // closed when the consumer stops
}

// laneWork is one lane's share of a published batch, in publication order.
type laneWork struct {
	evs   []Event
	reply chan<- error
}

// NewInProcess returns a transport that delivers every event to each of groups, running
// lanes tenants side by side in each (8 if lanes < 1). Publish waits for a group that is not
// consuming yet: there is nobody else to keep its events.
func NewInProcess(lanes int, groups ...string) *InProcess {
	if lanes < 1 {
		lanes = 8
	}
	p := &InProcess{lanes: lanes, names: groups, groups: make(map[string]*inGroup, len(groups))}
	for _, g := range groups {
		p.groups[g] = &inGroup{changed: make(chan struct{})}
	}
	return p
}

var errGroupStopped = errors.New("events: in-process consumer group stopped")

// Publish delivers evs to every group and waits until each has settled all of them.
func (p *InProcess) Publish(ctx context.Context, evs []Event) error {
	parts := make([][]Event, p.lanes)
	for _, e := range evs {
		i := lane(e, p.lanes)
		parts[i] = append(parts[i], e)
	}
	replies := make(chan error, len(p.names)*p.lanes)
	sent := 0
	for _, name := range p.names {
		sub, err := p.running(ctx, name)
		if err != nil {
			return err
		}
		for i, part := range parts {
			if len(part) == 0 {
				continue
			}
			select {
			case sub.lanes[i] <- laneWork{evs: part, reply: replies}:
				sent++
			case <-sub.done:
				return fmt.Errorf("%w: %s", errGroupStopped, name)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	// A lane always answers the work it took, if only with its consumer's context error.
	var first error
	for range sent {
		if err := <-replies; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// running waits until a consumer runs for group.
func (p *InProcess) running(ctx context.Context, group string) (*inSub, error) {
	for {
		p.mu.Lock()
		g := p.groups[group]
		sub, changed := g.sub, g.changed
		p.mu.Unlock()
		if sub != nil {
			return sub, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Consume runs group's lanes until ctx ends. A group has one consumer at a time.
func (p *InProcess) Consume(ctx context.Context, group string, deliver Deliver) error {
	sub := &inSub{lanes: make([]chan laneWork, p.lanes), done: make(chan struct{})}
	for i := range sub.lanes {
		sub.lanes[i] = make(chan laneWork)
	}
	if err := p.attach(group, sub); err != nil {
		return err
	}
	// The relay marks a batch only after this Publish returned, so the consumers' commits
	// may skip waiting for the disk (see markedAfterSettled).
	dctx := context.WithValue(ctx, markedAfterSettledKey{}, true)
	var wg sync.WaitGroup
	for _, ch := range sub.lanes {
		wg.Go(func() {
			for {
				select {
				case w := <-ch:
					w.reply <- deliver(dctx, w.evs)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	<-ctx.Done()
	p.detach(group, sub)
	wg.Wait()
	return nil
}

type markedAfterSettledKey struct{}

// markedAfterSettled reports whether ctx is a delivery of the in-process transport, whose
// events the relay marks published only after they settled, in a commit later in the log.
// Their consumers' commits need not wait for the disk: the log is flushed in order, so a
// crash that keeps the mark keeps them too, and one that loses them loses the mark as well,
// and the events are published again (the inbox recognises what did survive). Not so with
// Kafka, whose consumers' offsets are committed elsewhere, in the broker.
func markedAfterSettled(ctx context.Context) bool {
	v, _ := ctx.Value(markedAfterSettledKey{}).(bool)
	return v
}

func (p *InProcess) attach(group string, sub *inSub) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.groups[group]
	switch {
	case !ok:
		return fmt.Errorf("events: consumer group %q is not one this in-process transport was built for", group)
	case g.sub != nil:
		return fmt.Errorf("events: consumer group %q is already consuming", group)
	}
	g.sub = sub
	close(g.changed)
	g.changed = make(chan struct{})
	return nil
}

func (p *InProcess) detach(group string, sub *inSub) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[group]
	g.sub = nil
	close(sub.done)
	close(g.changed)
	g.changed = make(chan struct{})
}
