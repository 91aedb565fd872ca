package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newTenant inserts a tenant with one project, as that tenant.
func newTenant(t *testing.T, db *postgres.DB, slug string) (tenantID, projectID uuid.UUID) {
	t.Helper()
	tenantID, projectID = uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	err := db.InTenantTx(context.Background(), tenantID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(),
			"INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, $2, $3, 'free')", tenantID, slug, slug); err != nil {
			return err
		}
		_, err := tx.Exec(context.Background(),
			"INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, 'p')", tenantID, projectID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tenantID, projectID
}

// Test 1: the catalog enforces the tenancy rule on every table with a tenant_id.
func TestCatalogEveryTenantTableIsIsolated(t *testing.T) {
	ctx := context.Background()
	conn := pgtest.Owner(t)

	rows, err := conn.Query(ctx, `
		SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
		       EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
		   AND (EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		        OR c.relname = 'tenants')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var name string
		var enabled, forced, policy bool
		if err := r.Scan(&name, &enabled, &forced, &policy); err != nil {
			return "", err
		}
		if !enabled || !forced || !policy {
			t.Errorf("table %s: rls enabled=%v forced=%v policy=%v, want all true", name, enabled, forced, policy)
		}
		return name, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 5 {
		t.Fatalf("found only %d tenant tables (%v): the query is wrong", len(tables), tables)
	}

	// Every primary key, unique constraint and foreign key of a tenant table includes tenant_id.
	rows, err = conn.Query(ctx, `
		SELECT c.relname, con.conname, con.contype::text
		  FROM pg_constraint con
		  JOIN pg_class c ON c.oid = con.conrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'f')
		   AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
		   AND NOT EXISTS (SELECT FROM pg_attribute a
		                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum = ANY (con.conkey))`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name, kind string
		if err := rows.Scan(&table, &name, &kind); err != nil {
			t.Fatal(err)
		}
		// A foreign key to the tenants table itself is the tenant_id column: that is the rule.
		if kind == "f" && strings.HasSuffix(name, "tenant_id_fkey") {
			continue
		}
		t.Errorf("table %s: constraint %s (%s) does not include tenant_id", table, name, kind)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// Unique indexes that are not constraints count too.
	var bad []string
	err = conn.QueryRow(ctx, `
		SELECT coalesce(array_agg(i.indexrelid::regclass::text), '{}')
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND i.indisunique
		   AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
		   AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
		                    AND a.attnum = ANY (i.indkey::int2[]))`).Scan(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("unique indexes without tenant_id: %v", bad)
	}
}

// Test 2: inside A's transaction only A's rows are seen; without a tenant a query fails;
// writing B's tenant_id from A fails.
func TestTenantTxSeesOnlyItsTenant(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	a, pa := newTenant(t, db, "iso-a")
	b, _ := newTenant(t, db, "iso-b")

	err := db.InTenantTx(ctx, a, func(tx pgx.Tx) error {
		var ids []uuid.UUID
		rows, _ := tx.Query(ctx, "SELECT id FROM projects")
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		if len(ids) != 1 || ids[0] != pa {
			t.Errorf("tenant A sees projects %v, want only %v", ids, pa)
		}
		var tenants int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM tenants").Scan(&tenants); err != nil {
			return err
		}
		if tenants != 1 {
			t.Errorf("tenant A sees %d tenants, want 1", tenants)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Outside a tenant transaction, a query of a tenant table fails.
	var n int
	err = db.Pool.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n)
	if err == nil || !strings.Contains(err.Error(), "no tenant") {
		t.Errorf("query without a tenant: err = %v, want the no-tenant error", err)
	}

	// Writing B's rows from A's transaction fails, and updates of B's rows touch nothing.
	err = db.InTenantTx(ctx, a, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, 'x')", b, uuid.Must(uuid.NewV7()))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert of B's row from A: err = %v, want a row-level security violation", err)
	}
	err = db.InTenantTx(ctx, a, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE projects SET tenant_id = $1", b)
		if err == nil && tag.RowsAffected() > 0 {
			return errors.New("moved A's project to B")
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("moving A's rows to B: err = %v, want a row-level security violation", err)
	}
}

// Test 3: the runtime role is neither superuser nor BYPASSRLS, and cannot switch RLS off.
func TestRuntimeRoleCannotBypassRLS(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	var user string
	var super, bypass bool
	err := db.Pool.QueryRow(ctx,
		"SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&user, &super, &bypass)
	if err != nil {
		t.Fatal(err)
	}
	if user != postgres.RuntimeRole || super || bypass {
		t.Fatalf("runtime connection is %s (superuser %v, bypassrls %v), want %s with neither", user, super, bypass, postgres.RuntimeRole)
	}
	for _, stmt := range []string{
		"ALTER TABLE projects DISABLE ROW LEVEL SECURITY",
		"ALTER TABLE projects NO FORCE ROW LEVEL SECURITY",
		"DROP POLICY tenant_isolation ON projects",
		"ALTER ROLE app_runtime BYPASSRLS",
	} {
		if _, err := db.Pool.Exec(ctx, stmt); err == nil {
			t.Errorf("%s: succeeded as the runtime role", stmt)
		}
	}
	// row_security = off makes a query fail rather than bypass the policy.
	a, _ := newTenant(t, db, "rls-off")
	err = db.InTenantTx(ctx, a, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL row_security = off"); err != nil {
			return err
		}
		var n int
		return tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n)
	})
	if err == nil {
		t.Error("with row_security off, a query of a tenant table succeeded")
	}
}

// Test 4: with a pool of one connection, nothing of tenant A survives to the next user of
// the connection, after a commit, an error or a panic.
func TestPooledConnectionCarriesNoTenant(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, _ := newTenant(t, db, "pool-a")

	seesNothing := func(when string) {
		t.Helper()
		var n int
		err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n)
		if err == nil {
			t.Errorf("%s: a query without a tenant saw %d projects, want an error", when, n)
		}
		if err == nil || !strings.Contains(err.Error(), "no tenant") {
			t.Errorf("%s: a query without a tenant failed with %v, want the no-tenant error", when, err)
		}
		var setting string
		if err := db.Pool.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if setting != postgres.NoTenant {
			t.Errorf("%s: the connection still carries tenant %q", when, setting)
		}
	}

	if err := db.InTenantTx(ctx, a, func(tx pgx.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	seesNothing("after a commit")

	db.InTenantTx(ctx, a, func(tx pgx.Tx) error { return errors.New("fail") })
	seesNothing("after an error")

	func() {
		defer func() { recover() }()
		db.InTenantTx(ctx, a, func(tx pgx.Tx) error { panic("boom") })
	}()
	seesNothing("after a panic")

	// The one-round-trip reads: after a row read, a row not found, a callback's error, a
	// failing statement in the middle, and a panic in a callback.
	pb := a
	_, err = postgres.ReadRow(ctx, db, a, scanUUID, "SELECT tenant_id FROM projects LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	seesNothing("after a read")
	if _, err := postgres.ReadRow(ctx, db, a, scanUUID, "SELECT id FROM projects WHERE id = $1", uuid.New()); !postgres.IsNoRows(err) {
		t.Errorf("reading a missing row: %v, want no rows", err)
	}
	seesNothing("after a read of no row")
	b := &pgx.Batch{}
	b.Queue("SELECT id FROM projects").QueryRow(func(pgx.Row) error { return errors.New("fail") })
	b.Queue("SELECT id FROM projects").QueryRow(func(row pgx.Row) error { return row.Scan(&pb) })
	if err := db.InTenantRead(ctx, a, b); err == nil || err.Error() != "fail" {
		t.Errorf("a read whose callback failed answered %v, want its error", err)
	}
	seesNothing("after a read's callback failed")
	b = &pgx.Batch{}
	b.Queue("SELECT 1/0")
	b.Queue("SELECT id FROM projects").QueryRow(func(row pgx.Row) error { return row.Scan(&pb) })
	if err := db.InTenantRead(ctx, a, b); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("a read with a failing statement answered %v, want its error", err)
	}
	seesNothing("after a read's statement failed")
	func() {
		defer func() { recover() }()
		b := &pgx.Batch{}
		b.Queue("SELECT id FROM projects").QueryRow(func(pgx.Row) error { panic("boom") })
		db.InTenantRead(ctx, a, b)
	}()
	seesNothing("after a read's callback panicked")
}

func scanUUID(row pgx.Row) (id uuid.UUID, err error) {
	err = row.Scan(&id)
	return id, err
}

// A read's statements are prepared once per connection. A schema change that alters what a
// prepared statement answers fails that read at most once per connection; the next is
// prepared afresh.
func TestTenantReadAfterSchemaChange(t *testing.T) {
	ctx := context.Background()
	owner := pgtest.Owner(t)
	for _, q := range []string{
		"CREATE TABLE read_plan (a int)", "INSERT INTO read_plan VALUES (1)", "GRANT SELECT ON read_plan TO " + postgres.RuntimeRole,
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	read := func() (int, error) {
		var cols int
		b := &pgx.Batch{}
		b.Queue("SELECT * FROM read_plan").Query(func(rows pgx.Rows) error {
			cols = len(rows.FieldDescriptions())
			for rows.Next() {
			}
			return rows.Err()
		})
		return cols, db.InTenantRead(ctx, uuid.New(), b)
	}
	if n, err := read(); err != nil || n != 1 {
		t.Fatalf("read = %d columns, %v; want 1", n, err)
	}
	if _, err := owner.Exec(ctx, "ALTER TABLE read_plan ADD COLUMN b int"); err != nil {
		t.Fatal(err)
	}
	read() // may fail: the prepared statement answered one column
	if n, err := read(); err != nil || n != 2 {
		t.Errorf("read after the change = %d columns, %v; want 2", n, err)
	}
}

// InTenantRead runs its statements under the tenant, and leaves nothing on the connection.
func TestTenantReadIsScopedAndLeavesNothing(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, pa := newTenant(t, db, "read-a")
	newTenant(t, db, "read-b")

	var ids []uuid.UUID
	var tenants int
	b := &pgx.Batch{}
	b.Queue("SELECT id FROM projects").Query(func(rows pgx.Rows) (err error) {
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	b.Queue("SELECT count(*) FROM tenants").QueryRow(func(row pgx.Row) error { return row.Scan(&tenants) })
	if err := db.InTenantRead(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != pa || tenants != 1 {
		t.Errorf("tenant A read projects %v and %d tenants, want only %v and 1", ids, tenants, pa)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err == nil {
		t.Errorf("after InTenantRead, a query without a tenant saw %d projects, want an error", n)
	}
}

// Every migration goes down as cleanly as it went up: a fresh database migrated up, rolled
// all the way down, and up again.
func TestMigrationsGoDownAndUp(t *testing.T) {
	ctx := context.Background()
	m := postgres.Migrator{OwnerURL: pgtest.Empty(t), FS: migrations.FS}
	if err := m.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	entries, _ := migrations.FS.ReadDir(".")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			if err := m.Down(ctx); err != nil {
				t.Fatalf("down (from %s or later): %v", e.Name(), err)
			}
		}
	}
	if err := m.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

// With a tracer, reads go through pgx's batches; a panic in a callback there must not keep
// the connection from the pool either.
func TestTracedReadReleasesConnectionOnPanic(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 1, Tracer: nopTracer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, pa := newTenant(t, db, "traced-a")
	func() {
		defer func() { recover() }()
		b := &pgx.Batch{}
		b.Queue("SELECT id FROM projects").QueryRow(func(pgx.Row) error { panic("boom") })
		db.InTenantRead(ctx, a, b)
	}()
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := postgres.ReadRow(wait, db, a, scanUUID, "SELECT id FROM projects")
	if err != nil || got != pa {
		t.Errorf("read after a panic = %v, %v; want %v", got, err, pa)
	}
}

type nopTracer struct{}

func (nopTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (nopTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Databases of one server migrate at once without failing: roles and their grants are
// shared by the whole server, and two migrations granting to one role at the same moment
// meet "tuple concurrently updated", which the migrator takes as a reason to try again.
func TestDatabasesMigrateAtOnce(t *testing.T) {
	ctx := context.Background()
	const n = 4
	urls := make([]string, n)
	for i := range urls {
		urls[i] = pgtest.Empty(t)
	}
	errs := make(chan error, n)
	for _, url := range urls {
		go func() { errs <- (postgres.Migrator{OwnerURL: url, FS: migrations.FS}).UpTo(ctx, 1) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A read's row is scanned with the plans its statement was last scanned with on the
// connection, made afresh when the destinations' types change; what pgx's rows answer for a
// row (no row, a NULL, a wrong count, a RowScanner) it answers too.
func TestTenantReadRowScans(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tenant, project := newTenant(t, db, "scan")
	const q = "SELECT id, name, NULL::text FROM projects WHERE id = $1"
	read := func(dest ...any) error {
		_, err := postgres.ReadRow(ctx, db, tenant, func(row pgx.Row) (struct{}, error) {
			return struct{}{}, row.Scan(dest...)
		}, q, project)
		return err
	}

	for range 2 { // the second time with the kept plans
		var id uuid.UUID
		var name string
		if err := read(&id, &name, nil); err != nil || id != project || name != "p" {
			t.Fatalf("scan = %v %q, %v; want %v \"p\"", id, name, err, project)
		}
	}
	var idText, name string
	var none *string
	if err := read(&idText, &name, &none); err != nil || idText != project.String() || none != nil {
		t.Errorf("scan into other types = %q %v, %v; want %q and nil", idText, none, err, project)
	}
	var scanned pgx.RowScanner = rowScanner{&idText}
	if err := read(scanned); err != nil || idText != project.String() {
		t.Errorf("scan by a RowScanner = %q, %v; want %q", idText, err, project)
	}
	var argErr pgx.ScanArgError
	if err := read(&idText, &name, &name); !errors.As(err, &argErr) || argErr.ColumnIndex != 2 {
		t.Errorf("NULL into a string: %v, want a ScanArgError for column 2", err)
	}
	if err := read(&idText); err == nil || !strings.Contains(err.Error(), "destinations") {
		t.Errorf("one destination for three columns: %v, want an error naming the count", err)
	}
	_, err = postgres.ReadRow(ctx, db, tenant, func(row pgx.Row) (string, error) {
		var s string
		return s, row.Scan(&s)
	}, "SELECT name FROM projects WHERE id = $1", uuid.New())
	if !postgres.IsNoRows(err) {
		t.Errorf("no row: %v, want pgx.ErrNoRows", err)
	}
	var driverBytes pgtype.DriverBytes
	if err := read(&idText, &driverBytes, nil); err == nil || !strings.Contains(err.Error(), "DriverBytes") {
		t.Errorf("scan into DriverBytes: %v, want refused", err)
	}
	// An error in a row after the first is the read's error, as with pgx's QueryRow.
	_, err = postgres.ReadRow(ctx, db, tenant, func(row pgx.Row) (int, error) {
		var n int
		return n, row.Scan(&n)
	}, "SELECT 1 / (x - 2) FROM generate_series(1, 3) x WHERE $1::uuid IS NOT NULL", project)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Errorf("division by zero in the second row: %v, want 22012", err)
	}
	var id uuid.UUID
	if err := read(&id, &name, nil); err != nil || id != project {
		t.Errorf("after the errors, scan = %v, %v; want %v", id, err, project)
	}
}

// rowScanner scans a row's first column, as a pgx.RowScanner.
type rowScanner struct{ id *string }

func (s rowScanner) ScanRow(rows pgx.Rows) error {
	var name string
	var none *string
	return rows.Scan(s.id, &name, &none)
}
