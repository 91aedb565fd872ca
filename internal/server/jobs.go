package server

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/saasbase/saasbase/internal/billing/metering"
)

// job is a background task run every interval on every replica; each is written to be safe
// when several replicas run it at once.
type job struct {
	name     string
	interval time.Duration
	run      func(context.Context) (int, error)
}

// RunBackground runs the background jobs until ctx ends, then waits for the running ones.
func (a *App) RunBackground(ctx context.Context) {
	jobs := []job{
		{"idempotency-reaper", 10 * time.Minute, a.Idempotency.Reap},
		{"payment-completer", 30 * time.Second, a.Completer.Run},
		{"billing-period-closer", time.Minute, a.Invoices.Close},
		{"invoice-collector", time.Minute, a.Collector.Run},
		{"stripe-usage-reporter", 5 * time.Minute, a.Reporter.Run},
		{"event-retries", time.Second, a.Consumers.RetryDue},
		{"events-reaper", time.Hour, a.EventsReaper.Run},
		{"tenant-purger", 10 * time.Minute, a.Purger.Run},
		{"tenant-exports", 30 * time.Second, a.Exports.Run},
		{"retention", time.Hour, a.Retention.Run},
		{"mail-reaper", time.Hour, a.Mailer.Reap},
		{"usage-reaper", time.Hour, (&metering.Reaper{DB: a.DB, Clock: a.Clock}).Run},
	}
	var wg sync.WaitGroup
	// The event pipeline runs continuously rather than on a timer: the relay and the webhook
	// deliverer poll as soon as they have caught up, and the consumers wait on their transport.
	wg.Go(func() { a.Relay.Run(ctx) })
	wg.Go(func() { a.Deliverer.Run(ctx) })
	wg.Go(func() { a.Mailer.Run(ctx) })
	wg.Go(func() {
		if err := a.Consumers.Run(ctx, a.Transport); err != nil {
			a.Logger.ErrorContext(ctx, "event consumers stopped", slog.String("error", err.Error()))
		}
	})
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.every(ctx, j)
		}()
	}
	wg.Wait()
}

// RunReplica runs what every serving replica needs whatever JOBS_ENABLED says: the flush of
// its API request counts, which live in this process's memory until written, so no other
// replica can write them. It returns when ctx ends, after a last flush, so a clean stop
// loses no count.
func (a *App) RunReplica(ctx context.Context) {
	a.every(ctx, job{"api-requests-flush", time.Second, a.Requests.Flush})
	if _, err := a.Requests.Flush(context.WithoutCancel(ctx)); err != nil {
		a.Logger.ErrorContext(ctx, "job failed", slog.String("job", "api-requests-flush"), slog.String("error", err.Error()))
	}
}

// every runs j at its interval, with jitter so replicas do not run in step.
func (a *App) every(ctx context.Context, j job) {
	for {
		wait := j.interval
		if j.interval >= 10*time.Second {
			wait = j.interval/2 + rand.N(j.interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n, err := j.run(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.Logger.ErrorContext(ctx, "job failed", slog.String("job", j.name), slog.String("error", err.Error()))
		case n > 0:
			a.Logger.InfoContext(ctx, "job done", slog.String("job", j.name), slog.Int("items", n))
		}
	}
}
