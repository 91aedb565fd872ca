// Package export builds a tenant's data export: every resource of the tenant as NDJSON, one
// file per resource, with a manifest of row counts and SHA-256 hashes, in one .tar.gz that
// is stored in the database in chunks and streamed to its owner. Rows are streamed from
// PostgreSQL to temporary files and the archive from those files to the database, so the
// process's memory does not grow with the tenant's size.
package export

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Statuses of an export.
const (
	Pending = "pending"
	Running = "running"
	Done    = "done"
	Failed  = "failed"
	Expired = "expired"
)

// Lifetime is how long an archive can be downloaded once done.
const Lifetime = 7 * 24 * time.Hour

// chunkSize is the size of the archive's pieces in the database.
const chunkSize = 1 << 20

// Export is an export job.
type Export struct {
	ID         uuid.UUID  `json:"id"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	SizeBytes  *int64     `json:"size_bytes"`

	attempt int
	chunks  int
}

// Resource is one file of the archive: the rows of a query, one JSON object per line.
type Resource struct {
	Name  string // the file is Name + ".ndjson"
	Query string // one text column: the row as JSON; RLS scopes it to the tenant
}

// Resources are what an export holds. Secrets and password hashes are left out by the
// columns chosen; each query orders its rows, so two exports of the same data are equal.
var Resources = []Resource{
	{"tenant", `SELECT row_to_json(t)::text FROM (SELECT id, name, slug, plan_code AS plan, status, timezone, created_at, updated_at FROM tenants) t`},
	{"users", `SELECT row_to_json(t)::text FROM (SELECT id, email, role, created_at, updated_at FROM users ORDER BY id) t`},
	{"api_keys", `SELECT row_to_json(t)::text FROM (SELECT id, name, role, created_by, rate_limit, created_at, last_used_at, revoked_at FROM api_keys ORDER BY id) t`},
	{"projects", `SELECT row_to_json(t)::text FROM (SELECT id, name, description, created_at, updated_at FROM projects ORDER BY id) t`},
	{"webhook_endpoints", `SELECT row_to_json(t)::text FROM (SELECT id, url, event_types, status, created_at, updated_at FROM webhook_endpoints ORDER BY id) t`},
	{"usage_events", `SELECT row_to_json(t)::text FROM (SELECT source, id, type, subject, time, data, received_at FROM usage_events ORDER BY source, id) t`},
	{"invoices", `SELECT row_to_json(t)::text FROM (SELECT id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, payment_id, created_at, updated_at FROM invoices ORDER BY id) t`},
	{"payments", `SELECT row_to_json(t)::text FROM (SELECT id, amount, currency, description, status, amount_refunded, failure_code, created_at, updated_at FROM payments ORDER BY id) t`},
	{"refunds", `SELECT row_to_json(t)::text FROM (SELECT id, payment_id, amount, status, failure_code, created_at, updated_at FROM refunds ORDER BY id) t`},
	{"events", `SELECT row_to_json(t)::text FROM (SELECT id, type, occurred_at, data FROM outbox ORDER BY id) t`},
	{"audit_log", `SELECT row_to_json(t)::text FROM (SELECT id, occurred_at, actor_type, actor_id, action, resource_type, resource_id, outcome, status, client_ip, request_id FROM audit_log ORDER BY id) t`},
}

// File is a manifest line.
type File struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Manifest describes an archive.
type Manifest struct {
	TenantID  uuid.UUID `json:"tenant_id"`
	ExportID  uuid.UUID `json:"export_id"`
	CreatedAt time.Time `json:"created_at"`
	Files     []File    `json:"files"`
}

// Exports stores export jobs and runs them.
type Exports struct {
	DB     *postgres.DB
	Clock  clock.Clock
	Logger *slog.Logger
	TmpDir string        // where the NDJSON files are spooled ("" : the system's)
	Stale  time.Duration // a run not finished after this is taken over (30 min if 0)
}

var (
	errNotReady = errs.E(errs.Conflict, "export_not_ready", "the export is not done yet")
	errGone     = errs.E(errs.Gone, "gone", "the export has expired")
)

// Create records a pending export requested by actor.
func (s *Exports) Create(ctx context.Context, tenantID uuid.UUID, actor string) (Export, error) {
	e := Export{ID: uuid.Must(uuid.NewV7()), Status: Pending, CreatedAt: s.Clock.Now().UTC()}
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenant_exports (tenant_id, id, status, requested_by, created_at)
			VALUES ($1, $2, 'pending', $3, $4)`, tenantID, e.ID, actor, e.CreatedAt)
		return err
	})
	if err != nil {
		return Export{}, fmt.Errorf("exports.create tenant %s: %w", tenantID, err)
	}
	return e, nil
}

// Get answers an export; a done export past its expiry reads as expired.
func (s *Exports) Get(ctx context.Context, tenantID, id uuid.UUID) (Export, error) {
	e, err := postgres.ReadRow(ctx, s.DB, tenantID, func(row pgx.Row) (Export, error) {
		var e Export
		var chunks *int
		err := row.Scan(&e.ID, &e.Status, &e.CreatedAt, &e.FinishedAt, &e.ExpiresAt, &e.SizeBytes, &e.attempt, &chunks)
		if chunks != nil {
			e.chunks = *chunks
		}
		return e, err
	}, `SELECT id, status, created_at, finished_at, expires_at, size_bytes, attempt, chunks FROM tenant_exports WHERE id = $1`, id)
	if postgres.IsNoRows(err) {
		return Export{}, errs.NotFoundf("no export %s", id)
	}
	if err != nil {
		return Export{}, fmt.Errorf("exports.get %s: %w", id, err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	for _, t := range []**time.Time{&e.FinishedAt, &e.ExpiresAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	if e.Status == Done && e.ExpiresAt != nil && !s.Clock.Now().Before(*e.ExpiresAt) {
		e.Status = Expired
	}
	return e, nil
}

// Download writes a done export's archive to w, a chunk at a time (one short read each).
func (s *Exports) Download(ctx context.Context, tenantID, id uuid.UUID, start func(Export), w io.Writer) error {
	e, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return err
	}
	switch e.Status {
	case Expired:
		return errGone
	case Done:
	default:
		return errNotReady
	}
	start(e)
	for seq := 0; seq < e.chunks; seq++ {
		data, err := postgres.ReadRow(ctx, s.DB, tenantID, scanBytes,
			"SELECT data FROM tenant_export_chunks WHERE export_id = $1 AND attempt = $2 AND seq = $3", id, e.attempt, seq)
		if err != nil {
			return fmt.Errorf("exports.download %s chunk %d: %w", id, seq, err)
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// Run runs pending exports (and takes over stopped runs) until none is left; it is a job.
func (s *Exports) Run(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		now := s.Clock.Now()
		stale := s.Stale
		if stale <= 0 {
			stale = 30 * time.Minute
		}
		var tenantID, id uuid.UUID
		var attempt int
		err := s.DB.Pool.QueryRow(ctx, "SELECT tenant_id, id, attempt FROM app.claim_tenant_export($1, $2)", now, now.Add(-stale)).
			Scan(&tenantID, &id, &attempt)
		if postgres.IsNoRows(err) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("exports.run: claim: %w", err)
		}
		if err := s.build(ctx, tenantID, id, attempt); err != nil {
			s.fail(ctx, tenantID, id, attempt, err)
		}
		n++
	}
	return n, ctx.Err()
}

// Start runs the pending exports in the background, for a request that just created one.
func (s *Exports) Start() {
	go func() {
		if _, err := s.Run(context.Background()); err != nil && s.Logger != nil {
			s.Logger.Error("export run failed", slog.String("error", err.Error()))
		}
	}()
}

func (s *Exports) fail(ctx context.Context, tenantID, id uuid.UUID, attempt int, cause error) {
	if s.Logger != nil {
		s.Logger.ErrorContext(ctx, "export failed", slog.String("tenant", tenantID.String()), slog.String("export", id.String()), slog.String("error", cause.Error()))
	}
	s.DB.InTenantTx(context.WithoutCancel(ctx), tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE tenant_exports SET status = 'failed', error = 'the export could not be built', finished_at = $3
			WHERE id = $1 AND attempt = $2`, id, attempt, s.Clock.Now())
		return err
	})
}

// build spools every resource to a temporary file, then writes the archive into chunks.
func (s *Exports) build(ctx context.Context, tenantID, id uuid.UUID, attempt int) error {
	dir, err := os.MkdirTemp(s.TmpDir, "saasbase-export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m := Manifest{TenantID: tenantID, ExportID: id, CreatedAt: s.Clock.Now().UTC()}
	for _, res := range Resources {
		f, err := s.spool(ctx, tenantID, res, dir)
		if err != nil {
			return fmt.Errorf("export %s: %s: %w", id, res.Name, err)
		}
		m.Files = append(m.Files, f)
	}
	cw := &chunkWriter{ctx: ctx, db: s.DB, tenantID: tenantID, exportID: id, attempt: attempt, buf: make([]byte, 0, chunkSize)}
	if err := writeArchive(cw, dir, m); err != nil {
		return fmt.Errorf("export %s: archive: %w", id, err)
	}
	if err := cw.flush(); err != nil {
		return err
	}
	now := s.Clock.Now()
	return s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE tenant_exports SET status = 'done', finished_at = $3, expires_at = $4, size_bytes = $5, chunks = $6
			WHERE id = $1 AND attempt = $2 AND status = 'running'`, id, attempt, now, now.Add(Lifetime), cw.size, cw.seq)
		if err != nil {
			return err
		}
		// Chunks of an earlier run that stopped are of no use now.
		_, err = tx.Exec(ctx, "DELETE FROM tenant_export_chunks WHERE export_id = $1 AND attempt <> $2", id, attempt)
		return err
	})
}

// spool writes a resource's rows to dir/<name>.ndjson, counting and hashing them as they
// stream from one query in one transaction (a consistent view of the resource).
func (s *Exports) spool(ctx context.Context, tenantID uuid.UUID, res Resource, dir string) (File, error) {
	out := File{Name: res.Name + ".ndjson"}
	f, err := os.Create(dir + "/" + out.Name)
	if err != nil {
		return out, err
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 64<<10)
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		// A large tenant's table takes longer than a request's statement timeout.
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = '30min'"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, res.Query, pgx.QueryResultFormats{pgx.TextFormatCode})
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			// The raw value: no copy into a Go string per row.
			line := rows.RawValues()[0]
			bw.Write(line)
			bw.WriteByte('\n')
			out.Rows++
			out.Bytes += int64(len(line)) + 1
		}
		return rows.Err()
	})
	if err != nil {
		return out, err
	}
	if err := bw.Flush(); err != nil {
		return out, err
	}
	out.SHA256 = hex.EncodeToString(h.Sum(nil))
	return out, f.Close()
}

// writeArchive writes manifest.json and the spooled files as a gzip'd tar to w.
func writeArchive(w io.Writer, dir string, m Manifest) error {
	// Fastest compression: the export is bounded by the spooling and the chunk writes, and
	// NDJSON compresses well even so.
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(manifest)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	for _, file := range m.Files {
		if err := addFile(tw, dir, file, m.CreatedAt); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func addFile(tw *tar.Writer, dir string, file File, at time.Time) error {
	f, err := os.Open(dir + "/" + file.Name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: file.Name, Mode: 0o644, Size: file.Bytes, ModTime: at, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err == nil && n != file.Bytes {
		err = errors.New("spooled file changed size")
	}
	return err
}

// chunkWriter stores what is written to it as chunks of the export, each in a short
// transaction of its own.
type chunkWriter struct {
	ctx      context.Context
	db       *postgres.DB
	tenantID uuid.UUID
	exportID uuid.UUID
	attempt  int
	buf      []byte
	seq      int
	size     int64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := chunkSize - len(c.buf)
		take := min(room, len(p))
		c.buf = append(c.buf, p[:take]...)
		p = p[take:]
		if len(c.buf) == chunkSize {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.db.InTenantTx(c.ctx, c.tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(c.ctx, `INSERT INTO tenant_export_chunks (tenant_id, export_id, attempt, seq, data) VALUES ($1, $2, $3, $4, $5)`,
			c.tenantID, c.exportID, c.attempt, c.seq, c.buf)
		return err
	})
	if err != nil {
		return fmt.Errorf("export %s: chunk %d: %w", c.exportID, c.seq, err)
	}
	c.size += int64(len(c.buf))
	c.seq++
	c.buf = c.buf[:0]
	return nil
}

func scanBytes(row pgx.Row) (b []byte, err error) { return b, row.Scan(&b) }
