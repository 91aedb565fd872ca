package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// BenchmarkTenantRead compares ways of reading one row of a tenant in one round trip
// (docs/performance.md): InTenantRead as it is (prepared statements sent with pgconn's
// ExecBatch), the same statements through pgx's batch pipeline as it was, the setting and
// the query in one simple-protocol message, and the bare read (the owner, no setting, the
// tenant a condition). Allocations per read do not depend on what else the machine runs.
func BenchmarkTenantRead(b *testing.B) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(b), postgres.Options{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	tid, pid := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	err = db.InTenantTx(ctx, tid, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, 'bench', $2, 'free')",
			tid, "bench-"+tid.String()[:8]); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, 'p')", tid, pid)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	owner, err := pgxpool.New(ctx, pgtest.OwnerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(owner.Close)

	const query = "SELECT id, name, created_at FROM projects"
	type project struct {
		id   uuid.UUID
		name string
		at   any
	}
	scan := func(row pgx.Row) (p project, err error) {
		err = row.Scan(&p.id, &p.name, &p.at)
		return p, err
	}
	reads := []struct {
		name string
		read func() error
	}{
		{"in_tenant_read", func() error {
			_, err := postgres.ReadRow(ctx, db, tid, scan, query+" WHERE id = $1", pid)
			return err
		}},
		{"pgx_batch", func() error {
			bt := &pgx.Batch{}
			bt.Queue("SELECT set_config('app.tenant_id', $1, true)", tid.String())
			bt.Queue(query+" WHERE id = $1", pid).QueryRow(func(row pgx.Row) error { _, err := scan(row); return err })
			return db.Pool.SendBatch(ctx, bt).Close()
		}},
		{"simple_protocol", func() error {
			c, err := db.Pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer c.Release()
			mrr := c.Conn().PgConn().Exec(ctx, "SELECT set_config('app.tenant_id', '"+tid.String()+"', true); "+
				query+" WHERE id = '"+pid.String()+"'")
			mrr.NextResult()
			mrr.ResultReader().Close()
			mrr.NextResult()
			rows := pgx.RowsFromResultReader(c.Conn().TypeMap(), mrr.ResultReader())
			rows.Next()
			var p project
			rows.Scan(&p.id, &p.name, &p.at)
			rows.Close()
			return mrr.Close()
		}},
		{"bare", func() error {
			_, err := scan(owner.QueryRow(ctx, query+" WHERE tenant_id = $1 AND id = $2", tid, pid))
			return err
		}},
	}
	for _, r := range reads {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := r.read(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
