package postgres_test

import (
	"context"
	"net"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// TestUnreachableDatabaseIsUnavailable: when PostgreSQL cannot be reached, tenant work fails
// with the kind Unavailable, a 503 the client may retry, not as an internal error; the
// caller's own errors pass through untouched.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every connection is refused
	ctx := context.Background()
	db, err := postgres.Open(ctx, "postgres://app_runtime@"+addr+"/gone?connect_timeout=2", postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	err = db.InTenantTx(ctx, uuid.New(), func(pgx.Tx) error { return nil })
	if !errs.Is(err, errs.Unavailable) {
		t.Errorf("InTenantTx on a refused connection: %v (kind %v), want Unavailable", err, errs.KindOf(err))
	}
	var n int
	b := &pgx.Batch{}
	b.Queue("SELECT 1").QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
	err = db.InTenantRead(ctx, uuid.New(), b)
	if !errs.Is(err, errs.Unavailable) {
		t.Errorf("InTenantRead on a refused connection: %v (kind %v), want Unavailable", err, errs.KindOf(err))
	}

	conflict := errs.E(errs.Conflict, "taken", "the name is taken")
	err = pgtest.DB(t).InTenantTx(ctx, uuid.New(), func(pgx.Tx) error { return conflict })
	if err != conflict {
		t.Errorf("the caller's error came back as %v", err)
	}
}
