package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// TestUUIDArguments: a uuid.UUID argument, by value or by pointer, reaches PostgreSQL as the
// uuid it spells, and a nil pointer as NULL, whatever the parameter's type is.
func TestUUIDArguments(t *testing.T) {
	db := pgtest.DB(t)
	ctx := context.Background()
	id := uuid.New()
	cases := []struct {
		name string
		arg  any
		want string
	}{
		{"value", id, id.String()},
		{"pointer", &id, id.String()},
		{"zero", uuid.Nil, uuid.Nil.String()},
		{"nil pointer", (*uuid.UUID)(nil), "<null>"},
	}
	for _, c := range cases {
		for _, sql := range []string{"SELECT coalesce($1::uuid::text, '<null>')", "SELECT coalesce($1::text, '<null>')"} {
			var got string
			if err := db.Pool.QueryRow(ctx, sql, c.arg).Scan(&got); err != nil {
				t.Errorf("%s in %q: %v", c.name, sql, err)
				continue
			}
			if got != c.want {
				t.Errorf("%s in %q: PostgreSQL saw %s, want %s", c.name, sql, got, c.want)
			}
		}
	}
	var back uuid.UUID
	if err := db.Pool.QueryRow(ctx, "SELECT $1::uuid", id).Scan(&back); err != nil || back != id {
		t.Errorf("round trip: %v, %v; want %v", back, err, id)
	}
	// Read back: a uuid, a NULL into a uuid.UUID (left as it was) and into a *uuid.UUID (nil),
	// and a uuid in text (the simple protocol).
	var null uuid.UUID
	var ptr *uuid.UUID = &id
	if err := db.Pool.QueryRow(ctx, "SELECT $1::uuid, NULL::uuid, NULL::uuid", id).Scan(&back, &null, &ptr); err != nil ||
		back != id || null != uuid.Nil || ptr != nil {
		t.Errorf("read back: %v, %v, %v, %v; want %v, the zero uuid, nil", back, null, ptr, err, id)
	}
	if err := db.Pool.QueryRow(ctx, "SELECT '"+id.String()+"'::uuid", pgx.QueryExecModeSimpleProtocol).Scan(&back); err != nil || back != id {
		t.Errorf("text: %v, %v; want %v", back, err, id)
	}
}
