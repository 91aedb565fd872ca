package postgres

import (
	"context"
	"time"
)

// ReapBatch is the batch size of the reaping jobs unless they set their own.
const ReapBatch = 1000

// Reap calls fn, a reaping function of the database taking (before timestamptz, max int) and
// answering how many rows it deleted, until a call deletes fewer than batch (ReapBatch if 0),
// and answers the rows deleted. Each call is a statement of its own, so its locks are short;
// the functions take their rows with SKIP LOCKED, so replicas may reap at once. It stops
// early when ctx ends, answering what it deleted so far.
func (db *DB) Reap(ctx context.Context, fn string, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = ReapBatch
	}
	query := "SELECT " + fn + "($1, $2)"
	total := 0
	for ctx.Err() == nil {
		var n int
		if err := db.Pool.QueryRow(ctx, query, before, batch).Scan(&n); err != nil {
			return total, err
		}
		total += n
		if n < batch {
			break
		}
	}
	return total, nil
}
