package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
		_, drained, err := r.run(ctx, true)
		switch {
		case err != nil && ctx.Err() == nil:
			r.logger().ErrorContext(ctx, "outbox relay failed", slog.String("error", err.Error()))
			pause = min(pause*2, 30*time.Second)
		case err == nil:
			pause = interval
		}
		if err == nil && !drained {
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
	n, _, err := r.run(ctx, false)
	return n, err
}

// chainFor bounds how long run relays round after round before Run looks at the lag again.
const chainFor = time.Second

// run relays a round, and, if chain, round after round while each finds events, for up to
// chainFor. It answers the events published and whether the last read found none (or found
// the lock taken).
//
// The rounds run on one connection, their statements sent in few round trips: the first round
// begins, takes the lock and reads in one; publishing, the transport's; then one marks the
// batch, commits, and begins the next round, which takes the lock again and reads on, so that
// a round costs a single round trip of the relay's besides the transport's. (Between the
// commit and the next lock another replica may take it: the read is then not published.)
func (r *Relay) run(ctx context.Context, chain bool) (int, bool, error) {
	conn, err := r.DB.Pool.Acquire(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("outbox.relay: read: %w", err)
	}
	// Back in the pool only outside a transaction: the pool closes a connection released in
	// one, which ends the transaction and frees the lock.
	defer conn.Release()
	committed := false
	defer func() {
		if !committed {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // if it fails, the pool closes the connection
		}
	}()

	// Until a round ends well, the next one starts from the beginning.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	rd := r.queueRead(b, r.after)
	r.after = position{}
	var (
		began     = time.Now()
		what      = "read"
		published int
		marking   []Event // the batch b marks
		markAt    time.Time
		marked    bool // b's mark committed (even if what b queued after it failed)
		endSpan   = func() {}
	)
	for {
		err := conn.SendBatch(ctx, b).Close()
		endSpan()
		endSpan = func() {}
		if marked {
			r.Metrics.publishedEvents(marking, markAt)
			published += len(marking)
			marked = false
		}
		if err != nil {
			return published, false, fmt.Errorf("outbox.relay: %s: %w", what, err)
		}
		if rd == nil { // b marked and committed, and read no more
			committed = true
			return published, false, nil
		}
		if !rd.locked || len(rd.evs) == 0 {
			if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
				return published, false, fmt.Errorf("outbox.relay: read: %w", err)
			}
			committed = true
			if rd.locked {
				r.after = rd.start // nothing new below the horizon: the position still holds
			}
			return published, true, nil
		}

		evs := rd.evs
		rctx, span, err := r.traceRound(ctx, conn, evs)
		if err != nil {
			return published, false, err
		}
		endSpan = func() { span.End() }
		if err := r.Transport.Publish(rctx, evs); err != nil {
			endSpan()
			return published, false, fmt.Errorf("outbox.relay: publish %d events: %w", len(evs), err)
		}
		if r.afterPublish != nil {
			if err := r.afterPublish(evs); err != nil {
				endSpan()
				return published, false, err
			}
		}
		tenants, ids := make([]uuid.UUID, len(evs)), make([]uuid.UUID, len(evs))
		for i, e := range evs {
			tenants[i], ids[i] = e.Tenant(), e.ID
		}
		marking, markAt = evs, r.Clock.Now()
		what = fmt.Sprintf("mark %d events published", len(evs))
		b = &pgx.Batch{}
		b.Queue("SELECT app.outbox_mark_published($1, $2, $3)", tenants, ids, markAt)
		last, readOn := rd.last, chain && time.Since(began) < chainFor
		b.Queue("COMMIT").Exec(func(pgconn.CommandTag) error {
			marked = true
			if !readOn {
				r.after = last // else the read on carries it
			}
			return nil
		})
		rd = nil
		if readOn {
			what += ", and read on"
			b.Queue("BEGIN")
			rd = r.queueRead(b, last)
		}
	}
}

// roundRead is what a round's read found, once its batch is sent.
type roundRead struct {
	start  position // where it read from
	last   position // its last event's
	locked bool
	evs    []Event
}

// queueRead queues on b a round's lock and read of the events after start, in a transaction
// that b began: the mark need not wait for the disk. A mark lost in a crash only publishes
// its batch again, which consumers recognise as duplicates (and the in-process consumers'
// own commits, which come before it in the log, are lost with it if at all: see
// markedAfterSettled).
func (r *Relay) queueRead(b *pgx.Batch, start position) *roundRead {
	if now := time.Now(); now.Sub(r.afterSet) >= resetEvery {
		start, r.afterSet = position{}, now
	}
	rd := &roundRead{start: start, evs: make([]Event, 0, r.batchSize())}
	var row outboxRow
	b.Queue("SELECT pg_try_advisory_xact_lock(hashtext($1)), set_config('synchronous_commit', 'off', true)", relayLock).
		QueryRow(func(row pgx.Row) error { return row.Scan(&rd.locked, nil) })
	// Queued after the lock, so it reads what the previous holder committed.
	b.Queue("SELECT tenant_id, id, type, occurred_at, data, txid FROM app.outbox_unpublished($1, $2, $3)",
		pgtype.Uint64{Uint64: start.txid, Valid: true}, start.id, r.batchSize()).
		Query(func(rows pgx.Rows) error {
			var txid uint64
			_, err := pgx.ForEachRow(rows, []any{&row.tenant, &row.ID, &row.Type, &row.OccurredAt, &row.Data, &txid}, func() error {
				rd.evs = append(rd.evs, row.event())
				rd.last = position{txid: txid, id: row.ID}
				return nil
			})
			return err
		})
	return rd
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
