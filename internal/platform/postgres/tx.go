package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tx is the transaction InTenantTx runs its function in: a pgx.Tx that also holds statements
// to run just before COMMIT, sent in COMMIT's round trip (Later). A unit of work's events go
// out that way: the outbox rows of a transaction cost no round trip of their own.
type Tx struct {
	pgx.Tx
	later []*pgx.QueuedQuery
	ended bool // committed or rolled back here: the embedded pgx.Tx is not to be used again
}

// ErrLater marks a commit that failed because a statement queued with Later did: the
// transaction is rolled back, and PostgreSQL's error, wrapped with it, says why.
var ErrLater = errors.New("postgres: a statement run with the commit failed")

// Later runs sql in tx just before tx commits, in COMMIT's round trip, when tx is a Tx;
// otherwise (a savepoint's pgx.Tx, a transaction begun elsewhere) at once. A statement run
// later must not be one whose result the transaction goes on to need: its error, if any, is
// the commit's (ErrLater), and rolls the transaction back.
//
// A savepoint does not know of the statements queued on the Tx while it was open: one
// rolled back with RollbackTo drops them, one of tx.Begin's pgx.Tx runs what is queued on it
// at once, but what code under it queues on the outer Tx (through a unit of work, WithTx)
// stays queued.
func Later(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	if t, ok := tx.(*Tx); ok && !t.ended {
		t.later = append(t.later, &pgx.QueuedQuery{SQL: sql, Arguments: args})
		return nil
	}
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

// Mark answers where tx's statements for later stand, for RollbackTo.
func Mark(tx pgx.Tx) int {
	if t, ok := tx.(*Tx); ok {
		return len(t.later)
	}
	return 0
}

// RollbackTo rolls tx back to the savepoint named, which was taken at mark (Mark), and drops
// the statements queued for later since: they belong to what the savepoint undoes.
func RollbackTo(ctx context.Context, tx pgx.Tx, savepoint string, mark int) error {
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+pgx.Identifier{savepoint}.Sanitize()); err != nil {
		return err
	}
	if t, ok := tx.(*Tx); ok && mark < len(t.later) {
		clear(t.later[mark:])
		t.later = t.later[:mark]
	}
	return nil
}

// Flush runs now, in one round trip, the statements queued for later in tx since mark
// (Mark), so that their errors are known before the savepoint taken at mark is released:
// the consumers flush what a handler queued, and roll back to its savepoint if that fails.
func Flush(ctx context.Context, tx pgx.Tx, mark int) error {
	t, ok := tx.(*Tx)
	if !ok || mark >= len(t.later) {
		return nil
	}
	b := &pgx.Batch{QueuedQueries: append([]*pgx.QueuedQuery(nil), t.later[mark:]...)}
	clear(t.later[mark:])
	t.later = t.later[:mark]
	return t.Tx.SendBatch(ctx, b).Close()
}

// Commit sends the statements queued for later and COMMIT in one round trip. If one of them
// fails, the rest and COMMIT are skipped and the transaction is left aborted, to be rolled
// back by whoever holds the connection (runBatch); the error is ErrLater's.
func (t *Tx) Commit(ctx context.Context) error {
	if t.ended {
		return pgx.ErrTxClosed
	}
	conn := t.Tx.Conn()
	if len(t.later) == 0 || conn.PgConn().TxStatus() == 'E' {
		// Nothing queued, or the transaction failed already (an error fn let by): a plain
		// COMMIT, which answers pgx.ErrTxCommitRollback for the latter.
		t.later, t.ended = nil, true
		return t.Tx.Commit(ctx)
	}
	b := &pgx.Batch{QueuedQueries: t.later}
	t.later, t.ended = nil, true
	// The embedded pgx.Tx never sees this COMMIT: from now on it answers ErrTxClosed, as
	// after its own, rather than run statements on a connection back in the pool.
	t.Tx = closedTx()
	queueCommit(b)
	err := conn.SendBatch(ctx, b).Close()
	if err != nil && conn.PgConn().TxStatus() == 'E' {
		// Aborted, not ended: a queued statement failed, and COMMIT was skipped.
		return fmt.Errorf("%w: %w", ErrLater, err)
	}
	return err
}

// closedTx answers a pgx.Tx that is closed: each of its methods answers pgx.ErrTxClosed.
func closedTx() pgx.Tx {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	return pgx.FailedBatchResults(b, pgx.ErrTxClosed).Tx()
}

// Rollback drops the statements queued for later and rolls back.
func (t *Tx) Rollback(ctx context.Context) error {
	if t.ended {
		return pgx.ErrTxClosed
	}
	t.later, t.ended = nil, true
	return t.Tx.Rollback(ctx)
}

// queueCommit queues COMMIT into b, turning the ROLLBACK an aborted transaction answers into
// pgx.ErrTxCommitRollback.
func queueCommit(b *pgx.Batch) {
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() == "ROLLBACK" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
}

// endTx ends whatever transaction an error or a panic left open or aborted on conn, before
// the connection goes back to the pool. A connection that cannot is closed, and the pool
// drops it.
func endTx(ctx context.Context, conn *pgx.Conn) {
	if tx := conn.PgConn().TxStatus(); tx != 'I' && !conn.IsClosed() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
}
