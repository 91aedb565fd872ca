package retention_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/retention"
)

// A case inserts rows named due-* (past their table's retention) and keep-* (not yet, or
// kept by the table's rule), and lists the names left in the table.
type retentionCase struct {
	table  string
	insert []string // $1 is the clock's now
	left   string   // the names of the rows left
}

var retentionCases = []retentionCase{
	{"audit_log", []string{
		`INSERT INTO audit_log (tenant_id, id, occurred_at, actor_type, actor_id, action, resource_type, outcome, status, request_id)
		 VALUES ('10000000-0000-0000-0000-000000000001', gen_random_uuid(), $1 - interval '401 days', 'user', 'u', 'POST /v1/x', 'x', 'success', 200, 'due-old'),
		        ('10000000-0000-0000-0000-000000000001', gen_random_uuid(), $1 - interval '399 days', 'user', 'u', 'POST /v1/x', 'x', 'success', 200, 'keep-young')`,
	}, "SELECT request_id FROM audit_log"},
	{"refresh_tokens", []string{
		`INSERT INTO refresh_tokens (tenant_id, id, family_id, user_id, token_hash, expires_at, revoked_at)
		 VALUES ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000d1', gen_random_uuid(), '20000000-0000-0000-0000-000000000001', '\x01', $1 - interval '2 days', NULL),
		        ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000d2', gen_random_uuid(), '20000000-0000-0000-0000-000000000001', '\x02', $1 + interval '20 days', $1 - interval '2 days'),
		        ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000a1', gen_random_uuid(), '20000000-0000-0000-0000-000000000001', '\x03', $1 + interval '20 days', NULL),
		        ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000a2', gen_random_uuid(), '20000000-0000-0000-0000-000000000001', '\x04', $1 - interval '1 hour', NULL)`,
	}, "SELECT CASE WHEN id::text LIKE '%a_' THEN 'keep-' ELSE 'due-' END || right(id::text, 2) FROM refresh_tokens"},
	{"event_dead_letters", []string{
		`INSERT INTO event_dead_letters (tenant_id, consumer, event_id, event, attempts, last_error, parked_at, dead_at)
		 VALUES ('10000000-0000-0000-0000-000000000001', 'due-old', gen_random_uuid(), '{}', 1, 'x', $1, $1 - interval '91 days'),
		        ('10000000-0000-0000-0000-000000000001', 'keep-young', gen_random_uuid(), '{}', 1, 'x', $1, $1 - interval '89 days')`,
	}, "SELECT consumer FROM event_dead_letters"},
	{"flag_audit", []string{
		`INSERT INTO flag_audit (id, flag_key, action, actor, version, created_at)
		 VALUES (gen_random_uuid(), 'due-old', 'flag.created', 'op', 1, $1 - interval '401 days'),
		        (gen_random_uuid(), 'keep-young', 'flag.created', 'op', 1, $1 - interval '10 days')`,
	}, "SELECT flag_key FROM flag_audit WHERE flag_key ~ '^(due|keep)-'"},
	{"stripe_events", []string{
		`INSERT INTO stripe_events (event_id, type, processed_at)
		 VALUES ('due-old', 'x', $1 - interval '91 days'), ('keep-young', 'x', $1 - interval '89 days')`,
	}, "SELECT event_id FROM stripe_events"},
	{"stripe_usage_reports", []string{
		`INSERT INTO stripe_usage_reports (tenant_id, meter_key, bucket_start, reported, updated_at)
		 VALUES ('10000000-0000-0000-0000-000000000001', 'due-old', $1 - interval '61 days', 1, $1),
		        ('10000000-0000-0000-0000-000000000001', 'keep-young', $1 - interval '36 days', 1, $1)`,
	}, "SELECT meter_key FROM stripe_usage_reports"},
	// Tenant 1 was invoiced up to 770 days ago, tenant 2 never: its old rollups stay.
	{"usage_rollups", []string{
		`INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
		 VALUES ('10000000-0000-0000-0000-000000000001', gen_random_uuid(), $1 - interval '800 days', $1 - interval '770 days', 'usd', 'free', '[]', 0, 0, 'paid', $1, $1)`,
		`INSERT INTO usage_rollups (tenant_id, meter_key, bucket_start, value, events)
		 VALUES ('10000000-0000-0000-0000-000000000001', 'due-billed', $1 - interval '780 days', 1, 1),
		        ('10000000-0000-0000-0000-000000000001', 'keep-unbilled', $1 - interval '765 days', 1, 1),
		        ('10000000-0000-0000-0000-000000000001', 'keep-young', $1 - interval '10 days', 1, 1),
		        ('10000000-0000-0000-0000-000000000002', 'keep-never-invoiced', $1 - interval '780 days', 1, 1)`,
	}, "SELECT meter_key FROM usage_rollups"},
	{"webhook_deliveries", []string{
		`INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, secret_sealed, status, created_at, updated_at)
		 VALUES ('10000000-0000-0000-0000-000000000001', '30000000-0000-0000-0000-000000000001', 'https://a.example/h', '{x}', '\x00', 'disabled', $1, $1),
		        ('10000000-0000-0000-0000-000000000001', '30000000-0000-0000-0000-000000000002', 'https://b.example/h', '{x}', '\x00', 'enabled', $1, $1)`,
		`INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at, updated_at)
		 VALUES ('10000000-0000-0000-0000-000000000001', gen_random_uuid(), '30000000-0000-0000-0000-000000000001', gen_random_uuid(), 'due-abandoned', '\x00', 'pending', $1, $1 - interval '31 days', $1),
		        ('10000000-0000-0000-0000-000000000001', gen_random_uuid(), '30000000-0000-0000-0000-000000000001', gen_random_uuid(), 'keep-young', '\x00', 'pending', $1, $1 - interval '29 days', $1),
		        ('10000000-0000-0000-0000-000000000001', gen_random_uuid(), '30000000-0000-0000-0000-000000000002', gen_random_uuid(), 'keep-enabled', '\x00', 'pending', $1, $1 - interval '31 days', $1)`,
	}, "SELECT event_type FROM webhook_deliveries"},
	{"tenant_export_chunks", []string{
		`INSERT INTO tenant_exports (tenant_id, id, status, requested_by, created_at, expires_at, chunks)
		 VALUES ('10000000-0000-0000-0000-000000000001', '40000000-0000-0000-0000-000000000001', 'done', 'due-expired', $1, $1 - interval '1 hour', 1),
		        ('10000000-0000-0000-0000-000000000001', '40000000-0000-0000-0000-000000000002', 'done', 'keep-young', $1, $1 + interval '1 hour', 1)`,
		`INSERT INTO tenant_export_chunks (tenant_id, export_id, attempt, seq, data)
		 VALUES ('10000000-0000-0000-0000-000000000001', '40000000-0000-0000-0000-000000000001', 0, 0, '\x00'),
		        ('10000000-0000-0000-0000-000000000001', '40000000-0000-0000-0000-000000000002', 0, 0, '\x00')`,
	}, "SELECT e.requested_by FROM tenant_export_chunks c JOIN tenant_exports e ON e.id = c.export_id"},
}

// TestRetention: each table's job deletes its rows past retention, and nothing else.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	owner := pgtest.Owner(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, slug, plan_code) VALUES
		 ('10000000-0000-0000-0000-000000000001', 'one', 'ret-one', 'free'), ('10000000-0000-0000-0000-000000000002', 'two', 'ret-two', 'free')`,
		`INSERT INTO users (tenant_id, id, email, password_hash, role)
		 VALUES ('10000000-0000-0000-0000-000000000001', '20000000-0000-0000-0000-000000000001', 'a@x', 'h', 'owner')`,
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range retentionCases {
		for _, q := range c.insert {
			var args []any
			if strings.Contains(q, "$1") {
				args = append(args, now)
			}
			if _, err := owner.Exec(ctx, strings.ReplaceAll(q, "$1", "$1::timestamptz"), args...); err != nil {
				t.Fatalf("%s: %s: %v", c.table, q, err)
			}
		}
	}
	reg := prometheus.NewRegistry()
	r := &retention.Reaper{DB: pgtest.DB(t), Clock: clock.NewFixed(now), Policies: retention.Policies(400 * 24 * time.Hour),
		Batch: 1, Metrics: retention.NewMetrics(reg)}
	if _, err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, p := range r.Policies {
		covered[p.Table] = true
	}
	for _, c := range retentionCases {
		if !covered[c.table] {
			t.Errorf("no policy for %s", c.table)
		}
		rows, _ := owner.Query(ctx, c.left)
		left, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range left {
			if name[:4] != "keep" {
				t.Errorf("%s: %s is past its retention and still there", c.table, name)
			}
		}
		var kept int
		for _, name := range left {
			if name[:4] == "keep" {
				kept++
			}
		}
		if kept == 0 || slices.ContainsFunc(left, func(s string) bool { return s == "" }) {
			t.Errorf("%s: left %v", c.table, left)
		}
		if got := testutil.ToFloat64(r.Metrics.Deleted.WithLabelValues(c.table)); got < 1 {
			t.Errorf("%s: metric says %v rows deleted", c.table, got)
		}
	}
	// Every kept row of each case is still there: count them against the inserts.
	want := map[string]int{"audit_log": 1, "refresh_tokens": 2, "event_dead_letters": 1, "flag_audit": 1, "stripe_events": 1,
		"stripe_usage_reports": 1, "usage_rollups": 3, "webhook_deliveries": 2, "tenant_export_chunks": 1}
	for _, c := range retentionCases {
		rows, _ := owner.Query(ctx, c.left)
		left, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		if len(left) != want[c.table] {
			t.Errorf("%s: %d rows left %v, want %d", c.table, len(left), left, want[c.table])
		}
	}
	var expired string
	owner.QueryRow(ctx, "SELECT status FROM tenant_exports WHERE id = '40000000-0000-0000-0000-000000000001'").Scan(&expired)
	if expired != "expired" {
		t.Errorf("an export whose chunks were deleted is %q, want expired", expired)
	}
}
