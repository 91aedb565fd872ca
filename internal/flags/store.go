package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Store reads flags from PostgreSQL, the source of truth: for operators, and as whole
// snapshots for the Refresher. Changes go through Admin.
type Store struct {
	DB *postgres.DB
}

const flagColumns = "key, description, type, variants, default_variant, enabled, rules, salt, version, created_at, updated_at"

func scanFlag(row pgx.Row) (Flag, error) {
	var f Flag
	err := row.Scan(&f.Key, &f.Description, &f.Type, &f.Variants, &f.DefaultVariant, &f.Enabled,
		&f.Rules, &f.Salt, &f.Version, &f.CreatedAt, &f.UpdatedAt)
	f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
	return f, err
}

// List answers every flag, by key.
func (s *Store) List(ctx context.Context) ([]Flag, error) {
	rows, _ := s.DB.Pool.Query(ctx, "SELECT "+flagColumns+" FROM flags ORDER BY key")
	flags, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Flag, error) { return scanFlag(r) })
	if err != nil {
		return nil, fmt.Errorf("flags.list: %w", err)
	}
	return flags, nil
}

// Get answers one flag.
func (s *Store) Get(ctx context.Context, key string) (Flag, error) {
	f, err := scanFlag(s.DB.Pool.QueryRow(ctx, "SELECT "+flagColumns+" FROM flags WHERE key = $1", key))
	if postgres.IsNoRows(err) {
		return Flag{}, errNoFlag(key)
	}
	if err != nil {
		return Flag{}, fmt.Errorf("flags.get %q: %w", key, err)
	}
	return f, nil
}

func errNoFlag(key string) error { return errs.NotFoundf("no flag %q", key) }

// Overrides answers a page of a flag's overrides, in tenant id order.
func (s *Store) Overrides(ctx context.Context, key string, page httpx.Page) ([]Override, error) {
	var exists bool
	if err := s.DB.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM flags WHERE key = $1)", key).Scan(&exists); err != nil {
		return nil, fmt.Errorf("flags.overrides %q: %w", key, err)
	}
	if !exists {
		return nil, errNoFlag(key)
	}
	rows, _ := s.DB.Pool.Query(ctx, `
		SELECT flag_key, tenant_id, variant FROM app.flag_overrides($1)
		 WHERE tenant_id > $2 ORDER BY tenant_id LIMIT $3`, key, page.Cursor, page.Limit+1)
	overrides, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Override])
	if err != nil {
		return nil, fmt.Errorf("flags.overrides %q: %w", key, err)
	}
	return overrides, nil
}

// AuditEntry is one change, as the audit trail keeps it.
type AuditEntry struct {
	ID        uuid.UUID       `json:"id"`
	FlagKey   string          `json:"flag_key"`
	Action    string          `json:"action"`
	Actor     string          `json:"actor"`
	RequestID *string         `json:"request_id"` // nil outside a request
	Version   int64           `json:"version"`
	Before    json.RawMessage `json:"before"` // null for a creation
	After     json.RawMessage `json:"after"`  // null for a deletion
	CreatedAt time.Time       `json:"created_at"`
}

// Audit answers a page of a flag's audit trail, newest first. The trail outlives the flag.
func (s *Store) Audit(ctx context.Context, key string, page httpx.Page) ([]AuditEntry, error) {
	cursor := page.Before()
	rows, _ := s.DB.Pool.Query(ctx, `
		SELECT id, flag_key, action, actor, request_id, version, before, after, created_at
		  FROM flag_audit
		 WHERE flag_key = $1 AND id < $2
		 ORDER BY id DESC LIMIT $3`, key, cursor, page.Limit+1)
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.FlagKey, &e.Action, &e.Actor, &e.RequestID, &e.Version, &e.Before, &e.After, &e.CreatedAt)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("flags.audit %q: %w", key, err)
	}
	return entries, nil
}

// Version answers the current configuration version: the Refresher's cheap question.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.DB.Pool.QueryRow(ctx, "SELECT version FROM flag_config").Scan(&v); err != nil {
		return 0, fmt.Errorf("flags.version: %w", err)
	}
	return v, nil
}

// Snapshot loads every flag and override at one version. Like NewSnapshot, it may answer a
// snapshot together with an error naming what it left out.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	version, flags, overrides, err := s.readAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("flags.snapshot: %w", err)
	}
	return NewSnapshot(version, flags, overrides)
}

// readAll reads the version, the flags and the overrides in one REPEATABLE READ
// transaction, so they are one committed state: the version and exactly its changes.
func (s *Store) readAll(ctx context.Context) (version int64, flags []Flag, overrides []Override, err error) {
	tx, err := s.DB.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, nil, nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.QueryRow(ctx, "SELECT version FROM flag_config").Scan(&version); err != nil {
		return 0, nil, nil, err
	}
	rows, _ := tx.Query(ctx, "SELECT "+flagColumns+" FROM flags")
	if flags, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Flag, error) { return scanFlag(r) }); err != nil {
		return 0, nil, nil, err
	}
	rows, _ = tx.Query(ctx, "SELECT flag_key, tenant_id, variant FROM app.flag_overrides(NULL)")
	if overrides, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Override]); err != nil {
		return 0, nil, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, nil, nil, err
	}
	return version, flags, overrides, nil
}

// The statements of a change, each run inside Admin's transaction.

// lockVersion takes the change lock and answers the current version.
func lockVersion(ctx context.Context, tx pgx.Tx) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, "SELECT version FROM flag_config FOR UPDATE").Scan(&v)
	return v, err
}

func setVersion(ctx context.Context, tx pgx.Tx, v int64) error {
	_, err := tx.Exec(ctx, "UPDATE flag_config SET version = $1", v)
	return err
}

// flagInTx answers a flag, found or not.
func flagInTx(ctx context.Context, tx pgx.Tx, key string) (Flag, bool, error) {
	f, err := scanFlag(tx.QueryRow(ctx, "SELECT "+flagColumns+" FROM flags WHERE key = $1", key))
	if postgres.IsNoRows(err) {
		return Flag{}, false, nil
	}
	return f, err == nil, err
}

func upsertFlag(ctx context.Context, tx pgx.Tx, f Flag) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO flags (`+flagColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (key) DO UPDATE
		   SET description = excluded.description, type = excluded.type, variants = excluded.variants,
		       default_variant = excluded.default_variant, enabled = excluded.enabled,
		       rules = excluded.rules, salt = excluded.salt, version = excluded.version,
		       updated_at = excluded.updated_at`,
		f.Key, f.Description, f.Type, f.Variants, f.DefaultVariant, f.Enabled, f.Rules, f.Salt,
		f.Version, f.CreatedAt, f.UpdatedAt)
	return err
}

func deleteFlag(ctx context.Context, tx pgx.Tx, key string) error {
	_, err := tx.Exec(ctx, "DELETE FROM flags WHERE key = $1", key)
	return err
}

// overridesInTx answers every override of a flag.
func overridesInTx(ctx context.Context, tx pgx.Tx, key string) ([]Override, error) {
	rows, _ := tx.Query(ctx, "SELECT flag_key, tenant_id, variant FROM app.flag_overrides($1) ORDER BY tenant_id", key)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Override])
}

// setOverride answers the variant the override replaced ("" if there was none), or a
// NotFound error if the tenant does not exist.
func setOverride(ctx context.Context, tx pgx.Tx, o Override, at time.Time) (string, error) {
	var previous *string
	err := tx.QueryRow(ctx, "SELECT app.set_flag_override($1, $2, $3, $4)", o.FlagKey, o.TenantID, o.Variant, at).Scan(&previous)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" && pgErr.ConstraintName == "flag_overrides_tenant_id_fkey" {
		return "", errs.NotFoundf("no tenant %s", o.TenantID)
	}
	if err != nil || previous == nil {
		return "", err
	}
	return *previous, nil
}

// deleteOverrides deletes one tenant's override of a flag, or every tenant's when tenantID
// is nil, and answers what it deleted.
func deleteOverrides(ctx context.Context, tx pgx.Tx, key string, tenantID *uuid.UUID) ([]Override, error) {
	rows, _ := tx.Query(ctx, "SELECT $1::text, tenant_id, variant FROM app.delete_flag_overrides($1, $2) ORDER BY tenant_id", key, tenantID)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Override])
}

// auditRow is what insertAudit writes.
type auditRow struct {
	key, action, actor string
	version            int64
	before, after      json.RawMessage // nil is SQL NULL
	at                 time.Time
}

func insertAudit(ctx context.Context, tx pgx.Tx, a auditRow) error {
	var requestID *string
	if id := httpx.RequestID(ctx); id != "" {
		requestID = &id
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO flag_audit (id, flag_key, action, actor, request_id, version, before, after, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		uuid.Must(uuid.NewV7()), a.key, a.action, a.actor, requestID, a.version, nullJSON(a.before), nullJSON(a.after), a.at)
	return err
}

// nullJSON sends nil as SQL NULL rather than as the JSON null.
func nullJSON(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return []byte(b)
}
