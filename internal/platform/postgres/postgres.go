// Package postgres holds the connection pool and the one way tenant data is reached:
// InTenantTx, which runs a function in a transaction scoped to a tenant by row-level security.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/saasbase/saasbase/internal/platform/errs"
)

// RuntimeRole is the database role requests run as: not superuser, not BYPASSRLS and not
// the owner of the tables, so row-level security always applies to it.
const RuntimeRole = "app_runtime"

// PlatformTenant is the tenant id of platform-wide rows (operator events in the outbox). No
// real tenant has it, so tenants never see those rows.
var PlatformTenant = uuid.Nil

// DB is the runtime pool.
type DB struct {
	Pool *pgxpool.Pool

	traced bool // a tracer sees the statements: reads go through pgx's batches, which it sees
	// The statements readBatch prepares on every connection, at most maxPrepared of them:
	// unlike pgx's statement cache it evicts nothing, so statements past the bound (SQL built
	// at run time) go through pgx's batches.
	prepared  sync.Map // SQL → struct{}
	nPrepared atomic.Int32
}

// Options tune the runtime pool.
type Options struct {
	MaxConns         int32
	StatementTimeout time.Duration   // 0 keeps the role's default
	Tracer           pgx.QueryTracer // sees every statement (and batch, if a pgx.BatchTracer too)
	// Spans, if set, makes a span of every statement run under a sampled span
	// (tracing.Children), beside Tracer.
	Spans trace.TracerProvider
}

// Open connects to url as given. Use RuntimeURL to turn the owner's URL into the runtime one.
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	cfg.ConnConfig.Tracer = opt.Tracer
	if opt.Spans != nil {
		cfg.ConnConfig.Tracer = newSpanTracer(opt.Spans)
		if opt.Tracer != nil {
			cfg.ConnConfig.Tracer = multitracer.New(opt.Tracer, cfg.ConnConfig.Tracer)
		}
	}
	// No tenant until a transaction sets one: the tenant policies cast the setting to a uuid,
	// and this is none, so a query of tenant data outside InTenantTx fails, naming why.
	cfg.ConnConfig.RuntimeParams["app.tenant_id"] = NoTenant
	if opt.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(opt.StatementTimeout.Milliseconds())
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerUUID(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &DB{Pool: pool, traced: cfg.ConnConfig.Tracer != nil}, nil
}

// RuntimeURL returns appURL if set, else ownerURL with the user switched to RuntimeRole and
// the password dropped (local trust or peer auth).
func RuntimeURL(ownerURL, appURL string) (string, error) {
	if appURL != "" {
		return appURL, nil
	}
	if _, err := pgx.ParseConfig(ownerURL); err != nil {
		return "", fmt.Errorf("postgres: parse DATABASE_URL: %w", err)
	}
	return withUser(ownerURL, RuntimeRole)
}

// Close releases the pool.
func (db *DB) Close() { db.Pool.Close() }

// NoTenant is the tenant setting of a connection outside a tenant's transaction: not a uuid,
// so that row-level security fails rather than matching nothing, with these words in the
// error (invalid input syntax for type uuid: "no tenant: ...").
const NoTenant = "no tenant: tenant data is reached only through InTenantTx or InTenantRead"

// setTenant scopes row-level security to a tenant until the end of the transaction.
const setTenant = "SELECT set_config('app.tenant_id', $1, true)"

// InTenantTx runs fn in a transaction in which row-level security shows only tenantID's rows
// and refuses writes of any other tenant's. The setting is transaction-local, so the pooled
// connection carries nothing to its next user, even after a panic or an error. BEGIN and the
// setting travel in one round trip. fn's error is returned as is; the transaction commits
// only if fn returns nil. fn's tx is a *Tx: what it queues with Later goes out with COMMIT
// (inside a unit of work, with the unit's).
//
// Inside a unit of work (WithTx) for the same tenant, fn joins that transaction instead, and
// the unit's owner decides whether it commits.
func (db *DB) InTenantTx(ctx context.Context, tenantID uuid.UUID, fn func(pgx.Tx) error) error {
	if tx, err := ambient(ctx, tenantID); tx != nil || err != nil {
		if err != nil {
			return err
		}
		return fn(tx)
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(setTenant, tenantID.String())
	return db.beginBatch(ctx, b, fn)
}

// InTenantTxBatch is InTenantTx with b's statements sent in the same round trip as BEGIN and
// the tenant setting, for a transaction whose first statements need no earlier result.
func (db *DB) InTenantTxBatch(ctx context.Context, tenantID uuid.UUID, b *pgx.Batch, fn func(pgx.Tx) error) error {
	if tx, err := ambient(ctx, tenantID); tx != nil || err != nil {
		if err != nil {
			return err
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		return fn(tx)
	}
	first := &pgx.Batch{}
	first.BeginTx(pgx.TxOptions{})
	first.Queue(setTenant, tenantID.String())
	first.QueuedQueries = append(first.QueuedQueries, b.QueuedQueries...)
	return db.beginBatch(ctx, first, fn)
}

// InTenantPipeline runs a tenant transaction in as few round trips as its statements allow:
// first goes out with BEGIN and the tenant setting; fn, given the connection inside the
// transaction for any further reads, answers the transaction's last statements, which go out
// with its COMMIT. A transaction whose writes depend on one read costs two round trips.
//
// The last batch's statements either all take effect or none do: a failed one skips the rest
// and COMMIT with them, and the transaction is rolled back. But by the time its results are
// read the transaction has committed, so callbacks of the last batch must only observe:
// what they return cannot undo it. fn's error rolls back, and is returned as is.
func (db *DB) InTenantPipeline(ctx context.Context, tenantID uuid.UUID, first *pgx.Batch, fn func(conn *pgx.Conn) (*pgx.Batch, error)) error {
	if _, ok := ctx.Value(unitKey{}).(unit); ok {
		return errors.New("postgres: InTenantPipeline inside a unit of work")
	}
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		return unreachable(err)
	}
	defer c.Release()
	conn := c.Conn()
	defer endTx(ctx, conn)
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(first.QueuedQueries)+2)}
	b.Queue("BEGIN")
	b.Queue(setTenant, tenantID.String())
	b.QueuedQueries = append(b.QueuedQueries, first.QueuedQueries...)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return unreachable(err)
	}
	last, err := fn(conn)
	if err != nil {
		return err
	}
	if last == nil {
		last = &pgx.Batch{}
	}
	queueCommit(last) // a transaction that had failed (an error fn let by) answers ErrTxCommitRollback
	return unreachable(conn.SendBatch(ctx, last).Close())
}

func (db *DB) beginBatch(ctx context.Context, b *pgx.Batch, fn func(pgx.Tx) error) error {
	return unreachable(db.runBatch(ctx, b, fn))
}

func (db *DB) runBatch(ctx context.Context, b *pgx.Batch, fn func(pgx.Tx) error) error {
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	// After Commit a no-op; otherwise it ends the transaction an error or a panic left.
	defer endTx(ctx, conn)
	br := conn.SendBatch(ctx, b)
	tx := &Tx{Tx: br.Tx()}
	if err := br.Close(); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// InTenantRead runs the queued reads of b for a tenant in a single round trip: the tenant
// setting and the statements are pipelined, and PostgreSQL runs a pipeline up to its Sync as
// one implicit transaction, which the setting does not outlive. Read results through the
// callbacks of b's queued queries (QueuedQuery.QueryRow, Query).
func (db *DB) InTenantRead(ctx context.Context, tenantID uuid.UUID, b *pgx.Batch) error {
	if tx, err := ambient(ctx, tenantID); tx != nil || err != nil {
		if err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	}
	if !db.traced && db.mayPrepare(b) {
		return unreachable(db.readBatch(ctx, tenantID, b))
	}
	b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: setTenant, Arguments: []any{tenantID.String()}}}, b.QueuedQueries...)
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		return unreachable(err)
	}
	// Released however the callbacks end: a panic in one must not keep the connection from
	// the pool (the pool closes a connection released in the middle of a batch).
	defer c.Release()
	return unreachable(c.Conn().SendBatch(ctx, b).Close())
}

// errUnreachable is what a client hears when the database cannot be reached: a 503 to retry,
// not a 500 to report.
var errUnreachable = errs.E(errs.Unavailable, "database_unavailable", "the database cannot be reached; retry shortly")

// unreachable gives err the kind Unavailable when it says the database could not be reached
// or the connection was lost, and answers any other error as it is.
func unreachable(err error) error {
	if err == nil || errs.KindOf(err) != errs.Internal || errors.Is(err, context.Canceled) {
		return err
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connect) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) {
		return errs.Wrap(err, errUnreachable.Kind, errUnreachable.Code, errUnreachable.Detail)
	}
	return err
}

// Querier runs statements.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Platform answers where to read platform data (plans, meters: tables without tenants) in
// ctx: the unit of work's transaction if there is one, else the pool. A request inside a unit
// already holds a connection; taking a second from the pool could wait forever once every
// connection is held by such a request.
func (db *DB) Platform(ctx context.Context) Querier {
	if u, ok := ctx.Value(unitKey{}).(unit); ok {
		return u.tx
	}
	return db.Pool
}

// A unit of work is one tenant transaction that several steps of a request share, so that
// they commit or roll back together: the idempotency middleware claims a key, runs the
// handler and stores its answer in one.
type unitKey struct{}

type unit struct {
	tenantID uuid.UUID
	tx       pgx.Tx
}

// WithTx returns ctx in which InTenantTx and InTenantRead for tenantID run in tx.
func WithTx(ctx context.Context, tenantID uuid.UUID, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, unitKey{}, unit{tenantID: tenantID, tx: tx})
}

// ambient returns the unit of work's transaction, or an error if it belongs to another
// tenant: a request never crosses tenants.
func ambient(ctx context.Context, tenantID uuid.UUID) (pgx.Tx, error) {
	u, ok := ctx.Value(unitKey{}).(unit)
	if !ok {
		return nil, nil
	}
	if u.tenantID != tenantID {
		return nil, fmt.Errorf("postgres: tenant %s inside a unit of work of tenant %s", tenantID, u.tenantID)
	}
	return u.tx, nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

// IsUniqueViolation reports whether err is a unique violation of the named constraint
// (any unique constraint if constraint is empty).
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" &&
		(constraint == "" || pgErr.ConstraintName == constraint)
}

// IsForeignKeyViolation reports whether err is a foreign key violation of the named
// constraint (any foreign key if constraint is empty).
func IsForeignKeyViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503" &&
		(constraint == "" || pgErr.ConstraintName == constraint)
}

// IsNoRows reports whether err says a query returned no row.
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// ReadRow reads one row of a tenant in one round trip (InTenantRead), turned into a T by scan.
func ReadRow[T any](ctx context.Context, db *DB, tenantID uuid.UUID, scan func(pgx.Row) (T, error), sql string, args ...any) (T, error) {
	if tx, err := ambient(ctx, tenantID); tx == nil && err == nil && !db.traced && db.mayPrepareSQL(sql) {
		// InTenantRead's own way, without a pgx.Batch to queue the statement in: the
		// statement, the callback and out stay on this stack.
		var out T
		stmt := [1]statement{{sql: sql, args: args}}
		err := db.read(ctx, tenantID, stmt[:], func(_ int, br *readResults) (err error) {
			out, err = scan(br.QueryRow())
			return err
		})
		return out, unreachable(err)
	}
	return readRowBatch(ctx, db, tenantID, scan, sql, args)
}

// readRowBatch is ReadRow through InTenantRead.
func readRowBatch[T any](ctx context.Context, db *DB, tenantID uuid.UUID, scan func(pgx.Row) (T, error), sql string, args []any) (T, error) {
	var out T
	b := &pgx.Batch{}
	b.Queue(sql, args...).QueryRow(func(row pgx.Row) (err error) {
		out, err = scan(row)
		return err
	})
	return out, db.InTenantRead(ctx, tenantID, b)
}

// ReadRows reads rows of a tenant in one round trip (InTenantRead), each turned into a T by scan.
func ReadRows[T any](ctx context.Context, db *DB, tenantID uuid.UUID, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	var out []T
	b := &pgx.Batch{}
	b.Queue(sql, args...).Query(func(rows pgx.Rows) (err error) {
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
		return err
	})
	return out, db.InTenantRead(ctx, tenantID, b)
}
