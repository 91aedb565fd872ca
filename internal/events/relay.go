package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// Relay publishes the outbox to a transport, at least once and in commit order.
//
// Each round is one transaction: take the relay lock, read a batch of unpublished events in
// the order of their transactions (only those below the snapshot horizon, see
// app.outbox_unpublished), publish it, mark it published, commit. Dying anywhere before the
// commit leaves the batch unmarked, and the next round publishes it again: consumers
// recognise the duplicates in their inbox. Several replicas may run a relay; the lock (a
// transaction-scoped advisory lock, released by the commit or by a dead connection) lets one
// publish at a time, which is what keeps each tenant's events in order.
//
// A relay reads on from the last event it marked (below the horizon nothing new can appear
// before it), so a round does not step over what earlier rounds published; it starts from the
// beginning again whenever it did not hold the lock, failed, or every resetEvery.
type Relay struct {
	DB        *postgres.DB
	Transport Transport
	Clock     clock.Clock
	Metrics   *Metrics
	Logger    *slog.Logger
	BatchSize int              // events per round (500)
	Interval  time.Duration    // pause when the outbox is drained, or another replica relays (200ms)
	Tracing   *tracing.Tracing // nil: off

	afterPublish func([]Event) error // fault hook for tests: runs between publish and mark

	// Where the next read starts: after the last event this relay marked (zero: the start).
	after    position
	afterSet time.Time // when after was last started from the beginning
}

// position is an event's place in the relay's order.
type position struct {
	txid uint64
	id   uuid.UUID
}

// resetEvery bounds how long a relay reads on from its position before it looks at the
// whole outbox again, in case something it cannot know of left an event unpublished behind
// it (an operator clearing published_at to replay events).
const resetEvery = time.Minute

// relayLock names the advisory lock one relay at a time holds.
const relayLock = "saasbase:outbox-relay"

// Run relays until ctx ends. Errors are logged and retried with a growing pause; the outbox
// keeps the events meanwhile, and the lag metric shows the delay.
func (r *Relay) Run(ctx context.Context) {
	interval := r.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	pause, lagAt := interval, time.Time{}
	for ctx.Err() == nil {
		if now := time.Now(); now.Sub(lagAt) >= time.Second {
			r.updateLag(ctx)
			lagAt = now
		}
		n, err := r.RunOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.logger().ErrorContext(ctx, "outbox relay failed", slog.String("error", err.Error()))
			pause = min(pause*2, 30*time.Second)
		case err == nil:
			pause = interval
		}
		if err == nil && n == r.batchSize() {
			continue // more waiting: no pause
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func (r *Relay) batchSize() int {
	if r.BatchSize <= 0 {
		return 500
	}
	return r.BatchSize
}

func (r *Relay) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// RunOnce relays one batch and answers how many events it published: 0 when there were none
// or another relay holds the lock.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	if now := time.Now(); now.Sub(r.afterSet) >= resetEvery {
		r.after, r.afterSet = position{}, now
	}
	// Until the round ends well, the next one starts from the beginning.
	start := r.after
	r.after = position{}
	var (
		evs    = make([]Event, 0, r.batchSize())
		row    outboxRow
		last   position
		locked bool
	)
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	// The mark need not wait for the disk: a mark lost in a crash only publishes its batch
	// again, which consumers recognise as duplicates (and the in-process consumers' own
	// commits, which come before it, flush the log as far as theirs).
	b.Queue("SELECT pg_try_advisory_xact_lock(hashtext($1)), set_config('synchronous_commit', 'off', true)", relayLock).
		QueryRow(func(row pgx.Row) error { return row.Scan(&locked, nil) })
	// Queued after the lock, so it reads what the previous holder committed.
	b.Queue("SELECT tenant_id, id, type, occurred_at, data, txid FROM app.outbox_unpublished($1, $2, $3)",
		pgtype.Uint64{Uint64: start.txid, Valid: true}, start.id, r.batchSize()).
		Query(func(rows pgx.Rows) error {
			var txid uint64
			_, err := pgx.ForEachRow(rows, []any{&row.tenant, &row.ID, &row.Type, &row.OccurredAt, &row.Data, &txid}, func() error {
				evs = append(evs, row.event())
				last = position{txid: txid, id: row.ID}
				return nil
			})
			return err
		})
	br := r.DB.Pool.SendBatch(ctx, b)
	tx := br.Tx()
	if tx == nil { // no transaction began: Close answers why
		if err := br.Close(); err != nil {
			return 0, fmt.Errorf("outbox.relay: read: %w", err)
		}
		return 0, nil
	}
	// A no-op after Commit; otherwise it ends the round's transaction, releasing the lock.
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := br.Close(); err != nil {
		return 0, fmt.Errorf("outbox.relay: read: %w", err)
	}
	if !locked || len(evs) == 0 {
		if err := tx.Commit(ctx); err != nil {
			return 0, fmt.Errorf("outbox.relay: read: %w", err)
		}
		if locked {
			r.after = start // nothing new below the horizon: the position still holds
		}
		return 0, nil
	}

	ctx, span, err := r.traceRound(ctx, tx, evs)
	if err != nil {
		return 0, err
	}
	defer span.End()
	if err := r.Transport.Publish(ctx, evs); err != nil {
		return 0, fmt.Errorf("outbox.relay: publish %d events: %w", len(evs), err)
	}
	if r.afterPublish != nil {
		if err := r.afterPublish(evs); err != nil {
			return 0, err
		}
	}
	tenants, ids := make([]uuid.UUID, len(evs)), make([]uuid.UUID, len(evs))
	for i, e := range evs {
		tenants[i], ids[i] = e.Tenant(), e.ID
	}
	now := r.Clock.Now()
	if _, err := tx.Exec(ctx, "SELECT app.outbox_mark_published($1, $2, $3)", tenants, ids, now); err != nil {
		return 0, fmt.Errorf("outbox.relay: mark %d events published: %w", len(evs), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("outbox.relay: mark %d events published: %w", len(evs), err)
	}
	r.after = last
	r.Metrics.publishedEvents(evs, now)
	return len(evs), nil
}

// outboxRow is a row of the relay's read as scanned.
type outboxRow struct {
	Event
	tenant uuid.UUID
}

func (row *outboxRow) event() Event {
	e := row.Event
	if row.tenant != postgres.PlatformTenant {
		tenant := row.tenant
		e.TenantID = &tenant
	}
	e.OccurredAt = e.OccurredAt.UTC()
	row.Data = nil // the next row must not scan into this event's bytes
	return e
}

// updateLag sets the outbox lag metric: the age of the oldest unpublished event.
func (r *Relay) updateLag(ctx context.Context) {
	if r.Metrics == nil {
		return
	}
	var oldest *time.Time
	if err := r.DB.Pool.QueryRow(ctx, "SELECT app.outbox_oldest_unpublished()").Scan(&oldest); err != nil {
		return // the relay's own error path reports a database that does not answer
	}
	lag := time.Duration(0)
	if oldest != nil {
		lag = r.Clock.Now().Sub(*oldest)
	}
	r.Metrics.setOutboxLag(lag)
}
