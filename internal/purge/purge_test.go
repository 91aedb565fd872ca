package purge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/purge"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// tenantTables answers every table of public with a tenant_id column, from
// information_schema (not the purge's own query).
func tenantTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, _ := conn.Query(context.Background(), `
		SELECT c.table_name FROM information_schema.columns c
		  JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
		 WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND tb.table_type = 'BASE TABLE'
		   AND NOT EXISTS (SELECT FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid WHERE k.relname = c.table_name)
		 ORDER BY 1`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// counts answers, for every tenant table, the rows of tenantID.
func counts(t *testing.T, conn *pgx.Conn, tenantID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range tenantTables(t, conn) {
		var n int
		if err := conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count(*) FROM %q WHERE tenant_id = $1", table), tenantID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// populate gives a tenant rows in as many tables as the API and a few inserts reach: users,
// keys, sessions, projects, webhook endpoints and deliveries, usage and rollups, the outbox,
// idempotency keys, the audit log, an export, invoices, payments, refunds, its Stripe
// customer, a parked event; and a Redis key under its hash tag.
func populate(t *testing.T, s *servertest.Server, ten servertest.Tenant, clk *clock.Fixed) {
	t.Helper()
	ctx := context.Background()
	s.LoginNewUser(t, ten, "member")
	s.Create(t, ten.Token, "/v1/api-keys", map[string]string{"name": "ci", "role": "member"})
	for i := range 3 {
		s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: ten.Token, Body: map[string]string{"name": fmt.Sprint("p", i)},
			Header: map[string]string{"Idempotency-Key": uuid.NewString()}}).Want(t, http.StatusCreated, "")
	}
	s.Create(t, ten.Token, "/v1/webhook-endpoints", map[string]any{"url": "http://127.0.0.1:9/hook", "event_types": []string{"project.created"}})
	events := make([]servertest.CloudEvent, 20)
	for i := range events {
		events[i] = servertest.TokensEvent(fmt.Sprint("e", i), clk.Now(), 1)
	}
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/usage/events", Token: ten.Token, Body: events})
	s.App.Requests.Flush(ctx)
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/tenant/exports", Token: ten.Token}).Want(t, http.StatusAccepted, "")

	owner := pgtest.Owner(t)
	for _, q := range []string{
		`INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
		 VALUES ($1, gen_random_uuid(), now() - interval '40 days', now() - interval '10 days', 'usd', 'free', '[]', 100, 100, 'paid', now(), now())`,
		`INSERT INTO payments (tenant_id, id, amount, currency, description, customer, payment_method, status, created_at, updated_at)
		 VALUES ($1, gen_random_uuid(), 100, 'usd', 'Invoice for Jane Doe', 'cus_jane', 'pm_card_visa', 'succeeded', now(), now())`,
		`INSERT INTO refunds (tenant_id, id, payment_id, amount, status, created_at, updated_at)
		 SELECT tenant_id, gen_random_uuid(), id, 10, 'succeeded', now(), now() FROM payments WHERE tenant_id = $1`,
		`INSERT INTO billing_customers (tenant_id, stripe_customer_id, created_at) SELECT id, 'cus_' || left(replace(id::text, '-', ''), 12), now() FROM tenants WHERE id = $1`,
		`INSERT INTO event_dead_letters (tenant_id, consumer, event_id, event, attempts, last_error, parked_at, dead_at)
		 VALUES ($1, 'test', gen_random_uuid(), '{}', 3, 'boom', now(), now())`,
		`INSERT INTO usage_rollups (tenant_id, meter_key, bucket_start, value, events) VALUES ($1, 'tokens', now(), 1, 1)`,
	} {
		if _, err := owner.Exec(ctx, q, ten.ID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.App.Redis.Set(ctx, s.Config.RedisKeyPrefix+"{t:"+ten.ID+"}probe", "1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestDeletionLifecycle: pending → restore → pending → purge, on the injected clock. The
// purge leaves no row of the tenant in any tenant table but the kept ones (whose personal
// data is gone), deletes its Redis keys and Stripe customer, emits tenant.deleted, and
// leaves the other tenant's rows as they were.
func TestDeletionLifecycle(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC().Truncate(time.Second))
	s := servertest.NewAt(t, clk, stripetest.Configure(stripetest.StartMock(t)), allowPrivate)
	s.MeteredPlan(t)
	ctx := context.Background()
	owner := pgtest.Owner(t)
	a, b := s.Signup(t, "leaving"), s.Signup(t, "staying")
	s.OnPlan(t, a, "metered")
	s.OnPlan(t, b, "metered")
	populate(t, s, a, clk)
	populate(t, s, b, clk)
	if _, err := s.App.Exports.Run(ctx); err != nil {
		t.Fatal(err)
	}
	bBefore := counts(t, owner, b.ID)

	_, member := s.LoginNewUser(t, a, "member")
	del := func(token string, body any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/tenant", Token: token, Body: body})
	}
	del(member.AccessToken, map[string]string{"confirm": a.Slug}).Want(t, http.StatusForbidden, "forbidden")
	del(a.Token, map[string]string{}).Want(t, http.StatusBadRequest, "confirmation_required")
	del(a.Token, map[string]string{"confirm": b.Slug}).Want(t, http.StatusBadRequest, "confirmation_required")
	res := del(a.Token, map[string]string{"confirm": a.Slug})
	res.Want(t, http.StatusAccepted, "")
	var ten struct {
		Status     string    `json:"status"`
		PurgeAfter time.Time `json:"purge_after"`
	}
	res.Decode(t, &ten)
	if ten.Status != "pending_deletion" || !ten.PurgeAfter.Equal(clk.Now().Add(30*24*time.Hour)) {
		t.Fatalf("after DELETE: %s", res.Body)
	}
	s.Get(t, a.Token, "/v1/projects").Want(t, http.StatusForbidden, "tenant_pending_deletion")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/projects", Token: a.Token, Body: map[string]string{"name": "x"}}).
		Want(t, http.StatusForbidden, "tenant_pending_deletion")
	s.Get(t, a.Token, "/v1/tenant").Want(t, http.StatusOK, "")
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/tenant/exports", Token: a.Token}).Want(t, http.StatusAccepted, "")
	s.Login(t, a.Slug, a.OwnerEmail, servertest.Password) // owners still get tokens

	restore := func() *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/tenant/restore", Token: s.TokenFor(t, a)})
	}
	restore().Want(t, http.StatusOK, "")
	s.Get(t, a.Token, "/v1/projects").Want(t, http.StatusOK, "")
	restore().Want(t, http.StatusConflict, "conflict")

	del(a.Token, map[string]string{"confirm": a.Slug}).Want(t, http.StatusAccepted, "")
	clk.Advance(29 * 24 * time.Hour)
	if _, err := s.App.Purger.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, owner, a.ID); c["projects"] != 3 {
		t.Fatalf("purged before the grace ended: %v", c)
	}
	clk.Advance(2 * 24 * time.Hour)
	restore().Want(t, http.StatusConflict, "conflict")
	n, err := s.App.Purger.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the purge deleted nothing")
	}

	after := counts(t, owner, a.ID)
	for table, c := range after {
		if c != 0 && !slices.Contains(purge.Kept, table) {
			t.Errorf("%s still has %d rows of the purged tenant", table, c)
		}
	}
	for _, kept := range purge.Kept {
		if after[kept] == 0 {
			t.Errorf("kept table %s lost the purged tenant's rows", kept)
		}
	}
	var name, slug, status, desc string
	var customer *string
	if err := owner.QueryRow(ctx, `SELECT t.name, t.slug, t.status, p.description, p.customer FROM tenants t JOIN payments p ON p.tenant_id = t.id WHERE t.id = $1`, a.ID).
		Scan(&name, &slug, &status, &desc, &customer); err != nil {
		t.Fatal(err)
	}
	if status != "deleted" || name == "leaving" || slug == a.Slug || desc != "" || customer != nil {
		t.Errorf("tombstone %q %q %q, payment %q %v: personal data left", name, slug, status, desc, customer)
	}
	if bAfter := counts(t, owner, b.ID); !mapsEqual(bBefore, bAfter) {
		t.Errorf("the other tenant's rows changed:\nbefore %v\nafter  %v", bBefore, bAfter)
	}
	if n, _ := s.App.Redis.Exists(ctx, s.Config.RedisKeyPrefix+"{t:"+a.ID+"}probe").Result(); n != 0 {
		t.Error("the purged tenant's Redis key is still there")
	}
	if n, _ := s.App.Redis.Exists(ctx, s.Config.RedisKeyPrefix+"{t:"+b.ID+"}probe").Result(); n != 1 {
		t.Error("the other tenant's Redis key is gone")
	}
	var data string
	if err := owner.QueryRow(ctx, `SELECT data::text FROM outbox WHERE tenant_id = '00000000-0000-0000-0000-000000000000'
		AND type = 'tenant.deleted' AND data->>'tenant_id' = $1`, a.ID).Scan(&data); err != nil {
		t.Fatalf("no tenant.deleted event: %v", err)
	}
	s.Login(t, b.Slug, b.OwnerEmail, servertest.Password)
	if res := s.PasswordGrant(t, a.Slug, a.OwnerEmail, servertest.Password); res.Status == http.StatusOK {
		t.Error("the purged tenant's owner still logs in")
	}
	// Again: nothing left to do, and no second event.
	if _, err := s.App.Purger.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var events int
	owner.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = 'tenant.deleted' AND data->>'tenant_id' = $1`, a.ID).Scan(&events)
	if events != 1 {
		t.Errorf("%d tenant.deleted events, want 1", events)
	}
}

// allowPrivate lets webhook endpoints point at the loopback address (nothing is delivered:
// servertest runs no background jobs).
func allowPrivate(c *config.Config) { c.WebhooksAllowPrivate = true }

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestPurgeResumes: a purge stopped halfway (here after its third batch) has committed what
// it deleted and left the tenant due; the next run finishes it.
func TestPurgeResumes(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC().Truncate(time.Second))
	s := servertest.NewAt(t, clk, allowPrivate)
	s.MeteredPlan(t)
	ctx := context.Background()
	owner := pgtest.Owner(t)
	a := s.Signup(t, "resume")
	s.OnPlan(t, a, "metered")
	populate(t, s, a, clk)
	before := counts(t, owner, a.ID)

	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/admin/tenants/" + a.ID, Token: s.PlatformToken(t)}).Want(t, http.StatusAccepted, "")
	clk.Advance(31 * 24 * time.Hour)
	stop := errors.New("killed")
	batches := 0
	p := *s.App.Purger
	p.Batch = 2
	p.AfterBatch = func(string, int) error {
		if batches++; batches == 3 {
			return stop
		}
		return nil
	}
	if _, err := p.Purge(ctx, uuid.MustParse(a.ID)); !errors.Is(err, stop) {
		t.Fatalf("purge: %v, want it stopped", err)
	}
	mid := counts(t, owner, a.ID)
	if sum(mid) >= sum(before) {
		t.Fatalf("nothing committed before the stop: %v", mid)
	}
	var status string
	owner.QueryRow(ctx, "SELECT status FROM tenants WHERE id = $1", a.ID).Scan(&status)
	if status != "pending_deletion" || sum(mid) == 0 {
		t.Fatalf("after a stop halfway: status %s, %d rows left", status, sum(mid))
	}
	if _, err := s.App.Purger.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for table, c := range counts(t, owner, a.ID) {
		if c != 0 && !slices.Contains(purge.Kept, table) {
			t.Errorf("%s still has %d rows after the resumed purge", table, c)
		}
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestPurgeNow: the operator's purge=now purges at once (after the answer), and the purge
// covers every table with a tenant_id column (the catalog's list, not one kept by hand).
func TestPurgeNow(t *testing.T) {
	clk := clock.NewFixed(time.Now().UTC().Truncate(time.Second))
	s := servertest.NewAt(t, clk, allowPrivate)
	s.MeteredPlan(t)
	owner := pgtest.Owner(t)
	a := s.Signup(t, "now")
	s.OnPlan(t, a, "metered")
	populate(t, s, a, clk)

	tables, err := purge.Tables(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tenantTables(t, owner) {
		if !slices.Contains(tables, table) && !slices.Contains(purge.Kept, table) {
			t.Errorf("table %s has a tenant_id column but the purge does not cover it", table)
		}
	}

	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/admin/tenants/" + a.ID + "?purge=now", Token: s.PlatformToken(t)}).Want(t, http.StatusAccepted, "")
	servertest.Poll(t, 30*time.Second, "purge=now", func() (bool, string) {
		var status string
		owner.QueryRow(context.Background(), "SELECT status FROM tenants WHERE id = $1", a.ID).Scan(&status)
		return status == "deleted", status
	})
	for table, c := range counts(t, owner, a.ID) {
		if c != 0 && !slices.Contains(purge.Kept, table) {
			t.Errorf("%s still has %d rows after purge=now", table, c)
		}
	}
}
