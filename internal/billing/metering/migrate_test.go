package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/migrations"
)

// Migration 00023 copies the dedupe keys of events received in the last 35 days into
// usage_dedupe, keyed as metering.DedupeKey keys new events (so a retry of an event stored
// before the migration is still a duplicate), and leaves older ones out.
func TestDedupeMigrationKeepsTheWindow(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Empty(t)
	m := postgres.Migrator{OwnerURL: url, FS: migrations.FS}
	if err := m.UpTo(ctx, 22); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tenantID := uuid.New()
	now := time.Now().UTC()
	if _, err := conn.Exec(ctx, `INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, 'm', $2, 'free')`, tenantID, "m-"+tenantID.String()[:8]); err != nil {
		t.Fatal(err)
	}
	events := []struct {
		source, id string
		received   time.Time
	}{
		{"src/ü", "recent-1", now.Add(-10 * 24 * time.Hour)},
		{"src/ü", "recent-2", now.Add(-time.Hour)},
		{"src", "old", now.Add(-40 * 24 * time.Hour)},
	}
	for _, e := range events {
		if _, err := conn.Exec(ctx, `INSERT INTO usage_events (tenant_id, source, id, type, time, data, received_at)
			VALUES ($1, $2, $3, 't', $4, '{}', $4)`, tenantID, e.source, e.id, e.received); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM usage_dedupe WHERE tenant_id = $1 AND key = $2", tenantID, metering.DedupeKey(e.source, e.id)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		want := 1
		if e.id == "old" {
			want = 0
		}
		if n != want {
			t.Errorf("%s/%s: %d dedupe keys after the migration, want %d", e.source, e.id, n, want)
		}
	}
	var sqlKey uuid.UUID
	if err := conn.QueryRow(ctx, "SELECT app.usage_dedupe_key('ab', 'c')").Scan(&sqlKey); err != nil {
		t.Fatal(err)
	}
	if sqlKey != metering.DedupeKey("ab", "c") || sqlKey == metering.DedupeKey("a", "bc") {
		t.Errorf("app.usage_dedupe_key('ab', 'c') = %s; Go: %s, and ('a', 'bc') %s", sqlKey, metering.DedupeKey("ab", "c"), metering.DedupeKey("a", "bc"))
	}
}
