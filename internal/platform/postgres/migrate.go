package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for goose
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrator runs the embedded goose migrations as the schema owner.
type Migrator struct {
	OwnerURL   string // DATABASE_URL
	RuntimeURL string // the URL the service will use; its password, if any, is set on the role
	FS         fs.FS
	Log        io.Writer
}

// EnsureDatabase creates the database OwnerURL names if it does not exist yet, so a
// newcomer's `make run` works against a bare local server.
func (m Migrator) EnsureDatabase(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(m.OwnerURL)
	if err != nil {
		return fmt.Errorf("postgres: parse DATABASE_URL: %w", err)
	}
	name := cfg.Database
	adminURL, err := WithDatabase(m.OwnerURL, "postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("postgres: connect to create database %q: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by someone else
		return nil
	}
	return err
}

func (m Migrator) provider() (*goose.Provider, *sql.DB, error) {
	db, err := sql.Open("pgx", m.OwnerURL)
	if err != nil {
		return nil, nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, m.FS, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return p, db, nil
}

// Up applies every pending migration, then gives the runtime role the password of RuntimeURL.
func (m Migrator) Up(ctx context.Context) error {
	p, db, err := m.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.retryRoleRace(ctx, func() error {
		results, err := p.Up(ctx)
		m.report(results)
		return err
	}); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return m.setRuntimePassword(ctx, db)
}

// UpTo applies the pending migrations up to and including version, and no later one: for
// tests that need the schema as it was, to check what a later migration does to its data.
func (m Migrator) UpTo(ctx context.Context, version int64) error {
	p, db, err := m.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.retryRoleRace(ctx, func() error {
		results, err := p.UpTo(ctx, version)
		m.report(results)
		return err
	}); err != nil {
		return fmt.Errorf("migrate up to %d: %w", version, err)
	}
	return nil
}

// retryRoleRace runs up again when a migration lost a race on a cluster-wide catalog row:
// roles and their grants are shared by every database of the server, so two databases
// migrating at once (tests, several services on one server) can meet "tuple concurrently
// updated" on the same role. Each migration is one transaction, so the failed one left
// nothing behind and the next try starts from it.
func (m Migrator) retryRoleRace(ctx context.Context, up func() error) error {
	for try := 1; ; try++ {
		err := up()
		var pgErr *pgconn.PgError
		if err == nil || try == 5 || !errors.As(err, &pgErr) || pgErr.Code != "XX000" || !strings.Contains(pgErr.Message, "tuple concurrently updated") {
			return err
		}
		m.printf("migrate: %s; trying again\n", pgErr.Message)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
}

// Down rolls back the most recent migration. Roles are cluster-wide and never dropped.
func (m Migrator) Down(ctx context.Context) error {
	p, db, err := m.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := p.Down(ctx)
	if res != nil {
		m.report([]*goose.MigrationResult{res})
	}
	return err
}

// Status prints each migration and whether it is applied.
func (m Migrator) Status(ctx context.Context) error {
	p, db, err := m.provider()
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = "applied " + s.AppliedAt.UTC().Format("2006-01-02 15:04:05")
		}
		m.printf("%-40s %s\n", s.Source.Path, applied)
	}
	return nil
}

func (m Migrator) report(results []*goose.MigrationResult) {
	for _, r := range results {
		m.printf("%s\n", r)
	}
}

func (m Migrator) printf(format string, args ...any) {
	if m.Log != nil {
		fmt.Fprintf(m.Log, format, args...)
	}
}

// setRuntimePassword lets the runtime role log in with the credentials the service will use,
// when those name the role the migrations created and carry a password.
func (m Migrator) setRuntimePassword(ctx context.Context, db *sql.DB) error {
	if m.RuntimeURL == "" {
		return nil
	}
	cfg, err := pgx.ParseConfig(m.RuntimeURL)
	if err != nil {
		return fmt.Errorf("postgres: parse APP_DATABASE_URL: %w", err)
	}
	if cfg.User != RuntimeRole || cfg.Password == "" {
		return nil
	}
	_, err = db.ExecContext(ctx, "ALTER ROLE "+RuntimeRole+" PASSWORD "+quoteLiteral(cfg.Password))
	return err
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings is on).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
