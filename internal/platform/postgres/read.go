package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/saasbase/saasbase/internal/platform/ids"
)

// readBatch is InTenantRead's round trip without pgx's batch pipeline, which allocates
// several objects per statement for bookkeeping a read does not need (docs/performance.md):
// the tenant setting and b's statements, each prepared once per connection, go out as one
// sequence of Bind and Execute messages closed by one Sync (pgconn's ExecBatch). PostgreSQL
// runs everything up to the Sync as one implicit transaction, so the setting, being local to
// it, is gone when the connection goes back to the pool.
func (db *DB) readBatch(ctx context.Context, tenantID uuid.UUID, b *pgx.Batch) error {
	var buf [4]statement
	stmts := buf[:0]
	for _, qq := range b.QueuedQueries {
		stmts = append(stmts, statement{sql: qq.SQL, args: qq.Arguments})
	}
	return db.read(ctx, tenantID, stmts, func(i int, br *readResults) error {
		if fn := b.QueuedQueries[i].Fn; fn != nil {
			return fn(br)
		}
		_, err := br.Exec()
		return err
	})
}

// statement is one read of a round trip.
type statement struct {
	sql  string
	args []any
}

// read runs stmts as readBatch says, and hands the results of statement i to answer(i, br),
// in order. Neither stmts nor answer outlives it, so that a caller's statement, callback and
// result can stay on its stack (ReadRow).
func (db *DB) read(ctx context.Context, tenantID uuid.UUID, stmts []statement, answer func(i int, br *readResults) error) error {
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()

	var batch pgconn.Batch
	sd, err := conn.Prepare(ctx, setTenant, setTenant)
	if err != nil {
		return err
	}
	br := &readResults{m: conn.TypeMap()}
	br.sds = br.sdBuf[:0]
	br.row.m, br.row.plans = br.m, scanPlansOf(conn.PgConn())
	// The setting's one parameter, the tenant id's text, kept in br (ExecStatement's message
	// keeps a reference to it): no allocation of its own.
	br.tenant.v[0] = ids.AppendUUID(br.tenant.b[:0], tenantID)
	batch.ExecStatement(sd, br.tenant.v[:], nil, nil)
	var eqb pgx.ExtendedQueryBuilder
	for _, st := range stmts {
		sd, err := conn.Prepare(ctx, st.sql, st.sql)
		if err != nil {
			return err
		}
		// Build reuses its buffers; ExecStatement copies the values into the message.
		if err := eqb.Build(conn.TypeMap(), sd, st.args); err != nil {
			return err
		}
		batch.ExecStatement(sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
		br.sds = append(br.sds, sd)
	}

	br.mrr = conn.PgConn().ExecBatch(ctx, &batch)
	// As with pgx's batches, the callbacks after the first error are not called.
	_, first := br.Exec() // the setting
	for i := range stmts {
		if first != nil {
			break
		}
		br.row.sd = br.sds[i]
		first = answer(i, br)
	}
	if err := br.Close(); first == nil {
		first = err
	}
	if first != nil {
		var pgErr *pgconn.PgError
		if errors.As(first, &pgErr) && (pgErr.Code == "0A000" || pgErr.Code == "26000") {
			// "cached plan must not change result type" after a schema change, or a statement
			// the server no longer has: prepare afresh next time, as pgx's own statement cache
			// does.
			for i, st := range stmts {
				conn.Deallocate(context.WithoutCancel(ctx), st.sql)
				delete(br.row.plans, br.sds[i])
			}
		}
	}
	return first
}

// tenantParam is the tenant setting's parameter values, with room for the text of the one.
type tenantParam struct {
	v [1][]byte
	b [36]byte
}

// maxPrepared bounds the statements readBatch prepares on a connection.
const maxPrepared = 500

// mayPrepare answers whether every statement of b is, or may become, one of those readBatch
// prepares.
func (db *DB) mayPrepare(b *pgx.Batch) bool {
	for _, qq := range b.QueuedQueries {
		if !db.mayPrepareSQL(qq.SQL) {
			return false
		}
	}
	return true
}

func (db *DB) mayPrepareSQL(sql string) bool {
	if _, ok := db.prepared.Load(sql); ok {
		return true
	}
	if db.nPrepared.Add(1) > maxPrepared {
		db.nPrepared.Add(-1)
		return false
	}
	if _, loaded := db.prepared.LoadOrStore(sql, struct{}{}); loaded {
		db.nPrepared.Add(-1)
	}
	return true
}

// readResults hands readBatch's results to the queued queries' callbacks, one statement each,
// in order, as pgx's own batch results do.
type readResults struct {
	mrr    *pgconn.MultiResultReader
	m      *pgtype.Map
	tenant tenantParam
	sds    []*pgconn.StatementDescription // by statement
	sdBuf  [4]*pgconn.StatementDescription
	row    row // QueryRow's, for the statement being answered
}

var errNoResult = errors.New("postgres: no result for a queued statement")

func (r *readResults) next() (*pgconn.ResultReader, error) {
	if !r.mrr.NextResult() {
		// An earlier statement failed, and PostgreSQL skipped the rest: its error, if known.
		if err := r.mrr.Close(); err != nil {
			return nil, err
		}
		return nil, errNoResult
	}
	return r.mrr.ResultReader(), nil
}

func (r *readResults) Exec() (pgconn.CommandTag, error) {
	rr, err := r.next()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return rr.Close()
}

func (r *readResults) Query() (pgx.Rows, error) {
	rr, err := r.next()
	if err != nil {
		return errRows{err}, err
	}
	return pgx.RowsFromResultReader(r.m, rr), nil
}

func (r *readResults) QueryRow() pgx.Row {
	rr, err := r.next()
	if err != nil {
		return errRows{err}
	}
	r.row.rr = rr
	return &r.row
}

func (r *readResults) Close() error { return r.mrr.Close() }

func (r *readResults) Tx() pgx.Tx { return nil }

// row is QueryRow's row: the first row of a statement's result, or pgx.ErrNoRows, scanned
// with the plans its statement was last scanned with on this connection.
type row struct {
	rr    *pgconn.ResultReader
	sd    *pgconn.StatementDescription
	m     *pgtype.Map
	plans scanPlans // the connection's
}

func (r *row) Scan(dest ...any) error {
	if len(dest) == 1 {
		if _, ok := dest[0].(pgx.RowScanner); ok { // pgx's rows call it
			return oneRow{pgx.RowsFromResultReader(r.m, r.rr)}.Scan(dest...)
		}
	}
	for _, d := range dest {
		if _, ok := d.(*pgtype.DriverBytes); ok { // they would point into the connection's buffer
			r.rr.Close()
			return errors.New("cannot scan into *pgtype.DriverBytes from QueryRow")
		}
	}
	if !r.rr.NextRow() {
		if _, err := r.rr.Close(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	err := r.plans.of(r.sd).scan(r.m, r.rr.FieldDescriptions(), r.rr.Values(), dest)
	if _, closeErr := r.rr.Close(); err == nil {
		err = closeErr
	}
	return err
}

// scanPlans are a connection's scan plans, by prepared statement: pgx's rows plan every
// column of every query anew (an allocation or two a column, more than a read's own), and a
// statement is scanned into the same types nearly every time. A connection is used by one
// goroutine at a time, so the map needs no lock.
type scanPlans map[*pgconn.StatementDescription]*rowPlans

// scanPlansKey is scanPlans' place in a connection's CustomData.
const scanPlansKey = "saasbase/postgres.scanPlans"

func scanPlansOf(c *pgconn.PgConn) scanPlans {
	p, ok := c.CustomData()[scanPlansKey].(scanPlans)
	if !ok {
		p = scanPlans{}
		c.CustomData()[scanPlansKey] = p
	}
	return p
}

func (p scanPlans) of(sd *pgconn.StatementDescription) *rowPlans {
	rp := p[sd]
	if rp == nil {
		rp = &rowPlans{}
		p[sd] = rp
	}
	return rp
}

// rowPlans are one statement's plans by column, and what each is for: the column's type and
// format (the statement's, checked all the same) and the destination's type.
type rowPlans struct {
	plans []pgtype.ScanPlan
	keys  []planKey
}

type planKey struct {
	oid    uint32
	format int16
	dest   reflect.Type
}

// scan is pgx's Rows.Scan, its errors worded alike, with plans kept from one query to the next.
func (p *rowPlans) scan(m *pgtype.Map, fields []pgconn.FieldDescription, values [][]byte, dest []any) error {
	if len(fields) != len(dest) {
		return fmt.Errorf("number of field descriptions must equal number of destinations, got %d and %d", len(fields), len(dest))
	}
	if len(p.plans) != len(dest) {
		p.plans, p.keys = make([]pgtype.ScanPlan, len(dest)), make([]planKey, len(dest))
	}
	for i, d := range dest {
		if d == nil {
			continue
		}
		if k := (planKey{fields[i].DataTypeOID, fields[i].Format, reflect.TypeOf(d)}); p.keys[i] != k {
			p.plans[i], p.keys[i] = m.PlanScan(k.oid, k.format, d), k
		}
		if err := p.plans[i].Scan(values[i], d); err != nil {
			return pgx.ScanArgError{ColumnIndex: i, FieldName: fields[i].Name, Err: err}
		}
	}
	return nil
}

// oneRow is the first row of rows, or pgx.ErrNoRows.
type oneRow struct{ rows pgx.Rows }

func (r oneRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	r.rows.Scan(dest...)
	r.rows.Close()
	return r.rows.Err()
}

// errRows are the rows of a statement that never ran.
type errRows struct{ err error }

func (e errRows) Close()                                       {}
func (e errRows) Err() error                                   { return e.err }
func (e errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (e errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (e errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                            { return e.err }
func (e errRows) Values() ([]any, error)                       { return nil, e.err }
func (e errRows) RawValues() [][]byte                          { return nil }
func (e errRows) Conn() *pgx.Conn                              { return nil }
func (e errRows) TypeMap() *pgtype.Map                         { return nil }
