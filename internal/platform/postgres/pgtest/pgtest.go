// Package pgtest gives each test package a database of its own, cloned from a template that
// holds the migrated schema, and drops it afterwards. Cloning takes a fraction of a second,
// where migrating each time would take several.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The server is TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
// which must be a role allowed to create databases and roles.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/migrations"
)

// state is the package database of the running test binary, set by Main.
var state struct {
	ownerURL   string
	runtimeURL string
}

// Main creates the package database, runs the tests, runs after (to stop what the tests
// started) and drops the database.
func Main(m *testing.M, after ...func()) {
	os.Exit(run(m, after))
}

func run(m *testing.M, after []func()) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	name, err := create(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	code := m.Run()
	for _, f := range after {
		f()
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := drop(ctx, name); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: drop:", err)
	}
	return code
}

// OwnerURL is the package database as its owner (a superuser): for checks of the catalog.
func OwnerURL(t testing.TB) string {
	t.Helper()
	if state.ownerURL == "" {
		t.Fatal("pgtest: call pgtest.Main from TestMain")
	}
	return state.ownerURL
}

// RuntimeURL is the package database as the runtime role.
func RuntimeURL(t testing.TB) string {
	OwnerURL(t)
	return state.runtimeURL
}

// DB opens a runtime pool on the package database, closed when the test ends.
func DB(t testing.TB) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), RuntimeURL(t), postgres.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// Owner opens a connection as the owner, closed when the test ends.
func Owner(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), OwnerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Empty creates a database with no schema, dropped when the test ends, and answers its URL
// as the owner: for tests of the migrations themselves.
func Empty(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := "saasbase_empty_" + randomSuffix()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if admin, err := pgx.Connect(ctx, ServerURL()); err == nil {
			admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close(ctx)
		}
	})
	url, err := postgres.WithDatabase(ServerURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// ServerURL is the PostgreSQL server the tests use, as a role that may create databases:
// TEST_DATABASE_URL, or the local server's postgres database.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func create(ctx context.Context) (string, error) {
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w (is PostgreSQL running?)", ServerURL(), err)
	}
	defer admin.Close(ctx)

	tmpl, err := ensureTemplate(ctx, admin)
	if err != nil {
		return "", err
	}
	name := "saasbase_test_" + packageName() + "_" + randomSuffix()
	// Cloning is refused while anyone is connected to the template, so clones and template
	// builds take turns under the same lock.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(hashtext('saasbase:pgtest'))"); err != nil {
		return "", err
	}
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl))
	admin.Exec(ctx, "SELECT pg_advisory_unlock(hashtext('saasbase:pgtest'))")
	if err != nil {
		return "", fmt.Errorf("clone template: %w", err)
	}
	if state.ownerURL, err = postgres.WithDatabase(ServerURL(), name); err != nil {
		return "", err
	}
	state.runtimeURL, err = postgres.RuntimeURL(state.ownerURL, "")
	return name, err
}

// ensureTemplate builds the template for the current migrations once; its name carries a
// hash of them, so a changed migration builds a new one. It is built under a temporary name
// and renamed when complete, so a crash never leaves a half-migrated template behind.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	name := "saasbase_tmpl_" + migrationsHash()
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(hashtext('saasbase:pgtest'))"); err != nil {
		return "", err
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext('saasbase:pgtest'))")

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	url, err := postgres.WithDatabase(ServerURL(), building)
	if err != nil {
		return "", err
	}
	if err := (postgres.Migrator{OwnerURL: url, FS: migrations.FS}).Up(ctx); err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, name)); err != nil {
		return "", err
	}
	return name, nil
}

func drop(ctx context.Context, name string) error {
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

func migrationsHash() string {
	h := sha256.New()
	fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// packageName names the database after the test binary (tenant.test → tenant), for people
// who look at the server while tests run.
func packageName() string {
	base := strings.TrimSuffix(strings.ToLower(filepath.Base(os.Args[0])), ".test")
	base = unsafeChars.ReplaceAllString(base, "_")
	if len(base) > 20 {
		base = base[:20]
	}
	return base
}

func randomSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
