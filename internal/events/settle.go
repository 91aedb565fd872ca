package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// outcome is what settling an event did.
type outcome string

const (
	applied   outcome = "applied"
	duplicate outcome = "duplicate"
	parked    outcome = "parked"
	skipped   outcome = "skipped"
	retried   outcome = "retried" // applied by the retrier
	dead      outcome = "dead"    // dead-lettered by the retrier
)

// settleRun settles a run of one tenant's events. The common case takes one transaction
// (and one commit) for the whole run, even a run of one event: applyRun, with no savepoint,
// whose handlers' statements for later (postgres.Later) go out with its COMMIT. When that
// cannot be (a handler or such a statement failed, or the tenant's queue for c is parked),
// nothing of it commits and the run goes one event at a time, each with its own savepoint. A
// handler that failed is not run again, its failure counts as the event's first attempt; after
// a failed statement for the commit, whose it was is not known, and every handler runs again.
func (cs *Consumers) settleRun(ctx context.Context, c Consumer, run []Event) error {
	r, err := cs.applyRun(ctx, c, run)
	if err != nil {
		return err
	}
	if r.ok {
		cs.Metrics.consumedEvents(c.Name, applied, r.applied)
		cs.Metrics.consumedEvents(c.Name, duplicate, len(run)-r.applied)
		return nil
	}
	failed, herr := r.failed, r.herr
	for i, e := range run {
		var known error
		if i == failed {
			known = herr
		}
		out, err := cs.settle(ctx, c, e, known)
		if err != nil {
			return err
		}
		cs.Metrics.consumedEvent(c.Name, out)
	}
	return nil
}

// runResult is what applyRun did: all of the run (ok), or nothing.
type runResult struct {
	ok      bool
	applied int   // events applied, the others being duplicates
	failed  int   // index of the event whose handler failed, or -1
	herr    error // its handler's error
}

// errAbandon rolls back a run that cannot be applied in one transaction.
var errAbandon = errors.New("events: run abandoned")

// applyRun applies a run of one tenant's events in one transaction: the inbox rows of all
// of them, then each new event's handler. It gives up, committing nothing, if the tenant's
// queue for c is parked or a handler fails.
func (cs *Consumers) applyRun(ctx context.Context, c Consumer, run []Event) (runResult, error) {
	ids := make([]uuid.UUID, len(run))
	for i, e := range run {
		ids[i] = e.ID
	}
	var (
		fresh   = make(map[uuid.UUID]bool, len(run))
		blocked bool
		res     = runResult{failed: -1}
	)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO event_inbox (tenant_id, consumer, event_id, received_at)
	         SELECT $1, $2, id, $4 FROM unnest($3::uuid[]) AS id
	         ON CONFLICT DO NOTHING RETURNING event_id`, run[0].Tenant(), c.Name, ids, cs.Clock.Now()).
		Query(func(rows pgx.Rows) error {
			var id uuid.UUID
			_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
				fresh[id] = true
				return nil
			})
			return err
		})
	b.Queue(blockedQuery(ctx), c.Name).QueryRow(func(row pgx.Row) error { return row.Scan(&blocked) })

	err := cs.DB.InTenantTxBatch(ctx, run[0].Tenant(), b, func(tx pgx.Tx) error {
		if blocked {
			return errAbandon
		}
		for i, e := range run {
			if !fresh[e.ID] {
				continue // taken in before, or earlier in this run (Kafka may hold a copy twice)
			}
			delete(fresh, e.ID)
			if err := cs.apply(ctx, tx, c, e, -1); err != nil {
				if ctx.Err() != nil {
					return err
				}
				res.failed, res.herr = i, err
				return errAbandon
			}
			res.applied++
		}
		return nil
	})
	switch {
	case errors.Is(err, errAbandon):
		return res, nil
	case errors.Is(err, postgres.ErrLater):
		// A statement a handler queued for the commit failed: one event at a time finds
		// whose, and parks that event alone.
		return runResult{failed: -1}, nil
	case err != nil:
		return runResult{}, fmt.Errorf("events.apply_run consumer %s events from %s: %w", c.Name, run[0].ID, err)
	}
	res.ok = true
	return res, nil
}

// blockedQuery answers whether the tenant's queue for consumer $1 is parked (row-level
// security shows the transaction's tenant's rows only). Delivered by the in-process transport
// it also lets the transaction commit without waiting for the disk, since the relay's mark,
// later in the log, will (see markedAfterSettled); the setting ends with the transaction.
func blockedQuery(ctx context.Context) string {
	if markedAfterSettled(ctx) {
		// In FROM, so that it runs whatever the answer.
		return "SELECT EXISTS (SELECT FROM event_retries WHERE consumer = $1) FROM set_config('synchronous_commit', 'off', true)"
	}
	return "SELECT EXISTS (SELECT FROM event_retries WHERE consumer = $1)"
}

// errDuplicate rolls back the transaction of an event taken in before.
var errDuplicate = errors.New("events: event already taken in")

// settle takes e in for c in one transaction of e's tenant:
//
//   - an inbox row already there: a duplicate, nothing happens;
//   - an earlier event of this tenant parked for c: e parks behind it, keeping the order;
//   - otherwise Handle runs; if it fails, its effect is rolled back to a savepoint and e is
//     parked for a retry, so the transport moves on to the next event.
//
// The inbox row commits in every case but the duplicate, so a later delivery of e is
// recognised whatever became of it. If known is not nil, Handle already failed with it and
// is not run again.
func (cs *Consumers) settle(ctx context.Context, c Consumer, e Event, known error) (outcome, error) {
	now := cs.Clock.Now()
	var fresh, blocked bool
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO event_inbox (tenant_id, consumer, event_id, received_at) VALUES ($1, $2, $3, $4)
	         ON CONFLICT DO NOTHING`, e.Tenant(), c.Name, e.ID, now).
		Exec(func(ct pgconn.CommandTag) error {
			fresh = ct.RowsAffected() == 1
			return nil
		})
	b.Queue(blockedQuery(ctx), c.Name).QueryRow(func(row pgx.Row) error { return row.Scan(&blocked) })
	b.Queue("SAVEPOINT apply")

	var out outcome
	err := cs.DB.InTenantTxBatch(ctx, e.Tenant(), b, func(tx pgx.Tx) error {
		mark := postgres.Mark(tx) // where the savepoint was taken: nothing is queued for later before Handle
		switch {
		case !fresh:
			out = duplicate
			return errDuplicate
		case blocked:
			out = parked
			return park(ctx, tx, c, e, 0, now, now, "")
		}
		herr := known
		if herr == nil {
			herr = cs.apply(ctx, tx, c, e, mark)
		}
		if herr == nil {
			out = applied
			return nil
		}
		if ctx.Err() != nil {
			return herr
		}
		cs.failed(ctx, c, e, 1, herr)
		if err := postgres.RollbackTo(ctx, tx, "apply", mark); err != nil {
			return err
		}
		out = parked
		return park(ctx, tx, c, e, 1, now.Add(cs.Retry.backoff(1)), now, herr.Error())
	})
	switch {
	case errors.Is(err, errDuplicate):
		return out, nil
	case err != nil:
		return out, fmt.Errorf("events.settle consumer %s event %s: %w", c.Name, e.ID, err)
	}
	return out, nil
}

// apply runs c.Handle, turning a panic into an error: a poison event must not take the
// process down with it.
//
// An event settled on its own sits behind a savepoint taken at mark (Mark): the statements
// its handler queued for the commit (postgres.Later) then run at once, so that their failure
// is the handler's, rolled back to the savepoint and retried like any other. A run's (mark
// < 0) go out with its COMMIT.
func (cs *Consumers) apply(ctx context.Context, tx pgx.Tx, c Consumer, e Event, mark int) (err error) {
	ctx, end := cs.traceApply(ctx, c, e)
	defer func() { end(err) }()
	defer func() {
		if p := recover(); p != nil {
			cs.logger().ErrorContext(ctx, "event consumer panicked", slog.String("consumer", c.Name),
				slog.String("event_id", e.ID.String()), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	if err := c.Handle(postgres.WithTx(ctx, e.Tenant(), tx), tx, e); err != nil || mark < 0 {
		return err
	}
	return postgres.Flush(ctx, tx, mark)
}

func (cs *Consumers) failed(ctx context.Context, c Consumer, e Event, attempt int, err error) {
	cs.Metrics.failed(c.Name)
	cs.logger().WarnContext(ctx, "event consumer failed", slog.String("consumer", c.Name),
		slog.String("event_id", e.ID.String()), slog.String("type", e.Type),
		slog.Int("attempt", attempt), slog.String("error", err.Error()))
}

// park queues e for c's retrier.
func park(ctx context.Context, tx pgx.Tx, c Consumer, e Event, attempts int, next, now time.Time, lastErr string) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO event_retries (tenant_id, consumer, event_id, event, attempts, next_attempt_at, last_error, parked_at)
		VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), $8)`,
		e.Tenant(), c.Name, e.ID, body, attempts, next, truncate(lastErr, 2000), now)
	return err
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
