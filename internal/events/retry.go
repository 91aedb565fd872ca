package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// RetryPolicy says how patiently a consumer's failed event is tried again before it is
// dead-lettered. The zero value means the defaults.
type RetryPolicy struct {
	Attempts int           // attempts in all, the first included (10)
	Base     time.Duration // pause after the first failure, doubling after each (1s)
	Max      time.Duration // longest pause (5m)
}

func (p RetryPolicy) attempts() int {
	if p.Attempts <= 0 {
		return 10
	}
	return p.Attempts
}

// backoff is the pause after the failures-th failed attempt.
func (p RetryPolicy) backoff(failures int) time.Duration {
	base, ceiling := p.Base, p.Max
	if base <= 0 {
		base = time.Second
	}
	if ceiling <= 0 {
		ceiling = 5 * time.Minute
	}
	d := base
	for i := 1; i < failures && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// RetryDue runs the parked events that are due: for each (tenant, consumer) queue whose
// first event is due, it tries that event and, while they succeed (or are given up on), the
// ones parked behind it. It answers how many events left their queue. It is a job: run it
// every second or so on every replica; a transaction-scoped advisory lock per queue keeps
// two replicas off the same queue.
func (cs *Consumers) RetryDue(ctx context.Context) (int, error) {
	rows, _ := cs.DB.Pool.Query(ctx, "SELECT tenant_id, consumer FROM app.event_retries_due($1, $2, $3)",
		cs.Names(), cs.Clock.Now(), 100)
	type queue struct {
		tenant   uuid.UUID
		consumer string
	}
	queues, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (q queue, err error) {
		err = r.Scan(&q.tenant, &q.consumer)
		return q, err
	})
	if err != nil {
		return 0, fmt.Errorf("events.retry_due: %w", err)
	}
	n := 0
	for _, q := range queues {
		c, _ := cs.find(q.consumer)
		for range 1000 { // a bound, so that one long queue cannot hold the job forever
			moved, err := cs.retryHead(ctx, c, q.tenant)
			if err != nil {
				return n, fmt.Errorf("events.retry_due consumer %s tenant %s: %w", c.Name, q.tenant, err)
			}
			if !moved {
				break
			}
			n++
		}
	}
	return n, nil
}

// retryHead tries the first parked event of c's queue for tenant, if it is due, and answers
// whether it left the queue (applied or dead-lettered).
func (cs *Consumers) retryHead(ctx context.Context, c Consumer, tenant uuid.UUID) (bool, error) {
	now := cs.Clock.Now()
	var (
		locked   bool
		body     []byte
		attempts int
		next     time.Time
		parkedAt time.Time
		found    bool
	)
	b := &pgx.Batch{}
	b.Queue("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", "saasbase:event-retries:"+tenant.String()+":"+c.Name).
		QueryRow(func(row pgx.Row) error { return row.Scan(&locked) })
	b.Queue(`SELECT event, attempts, next_attempt_at, parked_at FROM event_retries
	          WHERE consumer = $1 ORDER BY seq LIMIT 1`, c.Name).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&body, &attempts, &next, &parkedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
	b.Queue("SAVEPOINT apply")

	var result outcome // retried or dead, once the transaction commits
	err := cs.DB.InTenantTxBatch(ctx, tenant, b, func(tx pgx.Tx) error {
		mark := postgres.Mark(tx) // where the savepoint was taken: nothing is queued for later before Handle
		if !locked || !found || next.After(now) {
			return nil
		}
		var e Event
		if err := json.Unmarshal(body, &e); err != nil {
			return err
		}
		herr := cs.apply(ctx, tx, c, e, mark)
		if herr == nil {
			result = retried
			_, err := tx.Exec(ctx, "DELETE FROM event_retries WHERE consumer = $1 AND event_id = $2", c.Name, e.ID)
			return err
		}
		if ctx.Err() != nil {
			return herr
		}
		failures := attempts + 1
		cs.failed(ctx, c, e, failures, herr)
		if err := postgres.RollbackTo(ctx, tx, "apply", mark); err != nil {
			return err
		}
		if failures < cs.Retry.attempts() {
			_, err := tx.Exec(ctx, `
				UPDATE event_retries SET attempts = $3, next_attempt_at = $4, last_error = $5
				 WHERE consumer = $1 AND event_id = $2`,
				c.Name, e.ID, failures, now.Add(cs.Retry.backoff(failures)), truncate(herr.Error(), 2000))
			return err
		}
		result = dead
		cs.logger().ErrorContext(ctx, "event dead-lettered", slog.String("consumer", c.Name),
			slog.String("event_id", e.ID.String()), slog.String("type", e.Type), slog.Int("attempts", failures))
		_, err := tx.Exec(ctx, `
			WITH gone AS (DELETE FROM event_retries WHERE consumer = $1 AND event_id = $2)
			INSERT INTO event_dead_letters (tenant_id, consumer, event_id, event, attempts, last_error, parked_at, dead_at)
			VALUES ($3, $1, $2, $4, $5, $6, $7, $8)`,
			c.Name, e.ID, tenant, body, failures, truncate(herr.Error(), 2000), parkedAt, now)
		return err
	})
	switch {
	case err != nil:
		return false, err
	case result == retried:
		cs.Metrics.consumedEvent(c.Name, retried)
	case result == dead:
		cs.Metrics.deadLettered(c.Name)
	}
	return result != "", nil
}
