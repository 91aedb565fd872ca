package events

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
)

// InProcess is the default transport: the relay hands events straight to this process's
// consumers, with no broker in between. Having no broker to keep them, Publish returns only
// once every consumer group has settled every event (applied it, recognised a duplicate, or
// parked it for a retry in the database); until then the relay does not mark them published,
// so an event in flight when the process dies is published again after the restart.
//
// Each group runs its events in lanes, any of which takes the next tenant's share of a batch:
// a tenant's events are applied in order while other tenants' go ahead in the other lanes.
// A tenant's events of two batches cannot overtake one another, since a batch is handed out
// only once every share of the previous one settled; a lane is not bound to tenants, so one
// lane with more tenants than the others does not hold up the batch.
type InProcess struct {
	lanes  int
	names  []string
	mu     sync.Mutex
	groups map[string]*inGroup

	publishing sync.Mutex // held by the Publish under way
	// Answers still owed for shares an earlier Publish handed out: one that gave up early
	// (its context ended) leaves them behind, and the next waits for them.
	owed    int
	owedFor chan error
}

type inGroup struct {
	sub     *inSub        // nil while no consumer runs
	changed chan struct{} // closed (and replaced) when sub changes
}

// inSub is one running Consume call.
type inSub struct {
	work chan laneWork // to whichever lane is free
	done chan struct{} // closed when the consumer stops
}

// laneWork is one tenant's share of a published batch, in publication order.
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
	p.publishing.Lock()
	defer p.publishing.Unlock()
	// A lane always answers the work it took, if only with its consumer's context error.
	for ; p.owed > 0; p.owed-- {
		select {
		case <-p.owedFor:
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	var (
		parts  [][]Event
		tenant = map[uuid.UUID]int{} // → its share in parts
	)
	for _, e := range evs {
		i, ok := tenant[e.Tenant()]
		if !ok {
			i = len(parts)
			tenant[e.Tenant()] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], e)
	}
	replies := make(chan error, len(p.names)*len(parts))
	sent := 0
	defer func() {
		if sent > 0 { // given up before every answer came
			p.owed, p.owedFor = sent, replies
		}
	}()
	for _, name := range p.names {
		sub, err := p.running(ctx, name)
		if err != nil {
			return err
		}
		for _, part := range parts {
			select {
			case sub.work <- laneWork{evs: part, reply: replies}:
				sent++
			case <-sub.done:
				return fmt.Errorf("%w: %s", errGroupStopped, name)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	var first error
	for sent > 0 {
		select {
		case err := <-replies:
			sent--
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return ctx.Err()
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
	sub := &inSub{work: make(chan laneWork), done: make(chan struct{})}
	if err := p.attach(group, sub); err != nil {
		return err
	}
	// The relay marks a batch only after this Publish returned, so the consumers' commits
	// may skip waiting for the disk (see markedAfterSettled).
	dctx := context.WithValue(ctx, markedAfterSettledKey{}, true)
	var wg sync.WaitGroup
	for range p.lanes {
		wg.Go(func() {
			for {
				select {
				case w := <-sub.work:
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
