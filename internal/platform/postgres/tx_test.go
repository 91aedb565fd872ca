package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// The statements a transaction runs later (the outbox's rows) go out with its COMMIT: a
// transaction of nothing else is two round trips, whatever their number; they are undone
// with the transaction, or with the savepoint they came after; and one that fails fails the
// commit, leaving nothing of the transaction and a clean connection.
func TestLaterGoesOutWithCommit(t *testing.T) {
	ctx := context.Background()
	var trips pgtest.RoundTrips
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 1, Tracer: &trips})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tenant, _ := newTenant(t, db, "later")

	insert := "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, $3)"
	count := func(name string) int {
		t.Helper()
		n, err := postgres.ReadRow(ctx, db, tenant, func(row pgx.Row) (n int, err error) {
			err = row.Scan(&n)
			return n, err
		}, "SELECT count(*) FROM projects WHERE name = $1", name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	trips.N.Store(0)
	err = db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		for range 3 {
			if err := postgres.Later(ctx, tx, insert, tenant, uuid.New(), "committed"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := trips.N.Load(); n != 2 {
		t.Errorf("a transaction of 3 later statements took %d round trips, want 2 (BEGIN's, COMMIT's)", n)
	}
	if n := count("committed"); n != 3 {
		t.Errorf("%d of 3 later rows committed", n)
	}

	// After such a commit the transaction is closed, as after pgx's own: nothing runs on the
	// connection it handed back.
	var kept pgx.Tx
	err = db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		kept = tx
		return postgres.Later(ctx, tx, insert, tenant, uuid.New(), "kept")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Exec(ctx, "SELECT 1"); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("a statement on the transaction after its commit answered %v, want pgx.ErrTxClosed", err)
	}

	// fn's error: nothing runs.
	err = db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		if err := postgres.Later(ctx, tx, insert, tenant, uuid.New(), "failed"); err != nil {
			return err
		}
		return errors.New("fail")
	})
	if err == nil || count("failed") != 0 {
		t.Errorf("a transaction whose function failed: %v, %d later rows stored, want its error and none", err, count("failed"))
	}

	// A savepoint rolled back takes the later statements queued since with it, not those
	// before; a savepoint's own pgx.Tx runs them at once, and undoes them with itself.
	err = db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		if err := postgres.Later(ctx, tx, insert, tenant, uuid.New(), "before"); err != nil {
			return err
		}
		mark := postgres.Mark(tx)
		if _, err := tx.Exec(ctx, "SAVEPOINT sp"); err != nil {
			return err
		}
		if err := postgres.Later(ctx, tx, insert, tenant, uuid.New(), "undone"); err != nil {
			return err
		}
		if err := postgres.RollbackTo(ctx, tx, "sp", mark); err != nil {
			return err
		}
		nested, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if err := postgres.Later(ctx, nested, insert, tenant, uuid.New(), "nested"); err != nil {
			return err
		}
		return nested.Rollback(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, u, n := count("before"), count("undone"), count("nested"); b != 1 || u != 0 || n != 0 {
		t.Errorf("rows stored: %d before the savepoint, %d after it, %d in a nested transaction; want 1, 0, 0", b, u, n)
	}

	// A later statement that fails (a duplicate key) fails the commit: the transaction's
	// other writes are undone too, and the one connection is clean for the next.
	dup := uuid.New()
	err = db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insert, tenant, uuid.New(), "direct"); err != nil {
			return err
		}
		if err := postgres.Later(ctx, tx, insert, tenant, dup, "dup"); err != nil {
			return err
		}
		return postgres.Later(ctx, tx, insert, tenant, dup, "dup")
	})
	if !postgres.IsUniqueViolation(err, "") || !errors.Is(err, postgres.ErrLater) {
		t.Errorf("a transaction whose later statement failed answered %v, want ErrLater and the unique violation", err)
	}
	if d, u := count("direct"), count("dup"); d != 0 || u != 0 {
		t.Errorf("after a failed commit %d direct and %d later rows are stored, want none", d, u)
	}
	// A transaction that failed already (an error its function let by) commits nothing of
	// what it queued, and says it rolled back.
	err = db.InTenantTx(ctx, tenant, func(tx pgx.Tx) error {
		if err := postgres.Later(ctx, tx, insert, tenant, uuid.New(), "after-failure"); err != nil {
			return err
		}
		tx.Exec(ctx, "SELECT 1/0") //nolint:errcheck // the failure let by
		return nil
	})
	if !errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, postgres.ErrLater) || count("after-failure") != 0 {
		t.Errorf("committing a failed transaction answered %v and stored %d rows, want pgx.ErrTxCommitRollback and none", err, count("after-failure"))
	}
	var setting string
	if err := db.Pool.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&setting); err != nil || setting != postgres.NoTenant {
		t.Errorf("after a failed commit the connection carries tenant %q (%v)", setting, err)
	}
}
