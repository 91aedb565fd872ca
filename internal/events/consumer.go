package events

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// A Consumer applies events to the database, each once. Its effect and the inbox row saying
// it took the event in commit together, in a transaction that row-level security scopes to
// the event's tenant: a consumer of one tenant's event cannot read or write another's rows.
type Consumer struct {
	// Name identifies the consumer for good: it keys the inbox and names the Kafka consumer
	// group, so a renamed consumer is a new one and sees the retained events again.
	Name string
	// Platform consumers see platform events only; the others see tenants' events only, so
	// a platform event never reaches a tenant's consumer.
	Platform bool
	// Types, if set, are the event types the consumer wants; it skips the others without a
	// database round trip.
	Types []string
	// Handle applies e inside tx. ctx carries tx as the unit of work (postgres.WithTx), so
	// services that Handle calls join it. An error undoes the effect, and the event is tried
	// again later (see RetryPolicy); Handle must not call other systems, since a transaction
	// stays open while it runs.
	Handle func(ctx context.Context, tx pgx.Tx, e Event) error
}

func (c Consumer) wants(e Event) bool {
	if (e.TenantID == nil) != c.Platform {
		return false
	}
	return len(c.Types) == 0 || slices.Contains(c.Types, e.Type)
}

// consumerName keeps names usable as Kafka group ids and readable in metrics.
var consumerName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// Consumers runs a set of consumers on a transport and retries what they failed to apply.
type Consumers struct {
	DB      *postgres.DB
	Clock   clock.Clock
	Metrics *Metrics
	Logger  *slog.Logger
	Retry   RetryPolicy
	Tracing *tracing.Tracing // nil: off

	list []Consumer
}

// Add registers c. A bad or duplicate name is a wiring bug and panics.
func (cs *Consumers) Add(c Consumer) {
	if !consumerName.MatchString(c.Name) || c.Handle == nil {
		panic(fmt.Sprintf("events: consumer %q needs a name matching %s and a Handle", c.Name, consumerName))
	}
	if _, ok := cs.find(c.Name); ok {
		panic(fmt.Sprintf("events: consumer %q added twice", c.Name))
	}
	cs.list = append(cs.list, c)
	cs.Metrics.addConsumer(c.Name)
}

// Names are the consumers' names: the consumer groups a transport must serve.
func (cs *Consumers) Names() []string {
	names := make([]string, len(cs.list))
	for i, c := range cs.list {
		names[i] = c.Name
	}
	return names
}

func (cs *Consumers) find(name string) (Consumer, bool) {
	i := slices.IndexFunc(cs.list, func(c Consumer) bool { return c.Name == name })
	if i < 0 {
		return Consumer{}, false
	}
	return cs.list[i], true
}

func (cs *Consumers) logger() *slog.Logger {
	if cs.Logger == nil {
		return slog.Default()
	}
	return cs.Logger
}

// Run consumes t with every consumer until ctx ends.
func (cs *Consumers) Run(ctx context.Context, t Transport) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range cs.list {
		g.Go(func() error {
			return t.Consume(ctx, c.Name, func(ctx context.Context, evs []Event) error { return cs.deliver(ctx, c, evs) })
		})
	}
	return g.Wait()
}

// maxRun bounds the events of one tenant applied in one transaction.
const maxRun = 100

// deliver settles evs for c, a tenant's events at a time and in order.
func (cs *Consumers) deliver(ctx context.Context, c Consumer, evs []Event) error {
	for _, run := range cs.runs(c, evs) {
		rctx, end := cs.traceRun(ctx, c, run)
		err := cs.untilSettled(rctx, c, run)
		end(err)
		if err != nil {
			return err
		}
	}
	return nil
}

// runs groups the events c wants by tenant, keeping each tenant's order, in runs of at most
// maxRun; the others are skipped here.
func (cs *Consumers) runs(c Consumer, evs []Event) [][]Event {
	var (
		runs [][]Event
		open = map[uuid.UUID]int{} // tenant → index of its run still filling up
	)
	for _, e := range evs {
		if !c.wants(e) {
			cs.Metrics.consumedEvent(c.Name, skipped)
			continue
		}
		i, ok := open[e.Tenant()]
		if !ok || len(runs[i]) == maxRun {
			i = len(runs)
			open[e.Tenant()] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], e)
	}
	return runs
}

// untilSettled settles a run, trying again while the database fails, with a growing pause,
// rather than skip it: the events after it must not overtake it.
func (cs *Consumers) untilSettled(ctx context.Context, c Consumer, run []Event) error {
	pause := 100 * time.Millisecond
	for {
		err := cs.settleRun(ctx, c, run)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cs.logger().WarnContext(ctx, "events not settled; trying again", slog.String("consumer", c.Name),
			slog.String("tenant_id", run[0].Tenant().String()), slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
}
