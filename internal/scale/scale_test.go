//go:build scale

package scale_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// size is how much data the database holds when the measurements run.
type size struct {
	Tenants       int // tenants besides the probe tenant
	Projects      int // the probe tenant's projects
	OtherProjects int // projects of other tenants, spread over them
	Events        int // usage events: a tenth the probe tenant's, the rest other tenants'
	Overrides     int // overrides of the probe flag, one per tenant (at most Tenants)
	Outbox        int // unpublished outbox rows (other tenants')
	IdemKeys      int // expired idempotency keys (other tenants')
}

func (s size) times(f int) size {
	return size{s.Tenants * f, s.Projects * f, s.OtherProjects * f, s.Events * f, s.Overrides * f, s.Outbox * f, s.IdemKeys * f}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestScale seeds the small size, measures, grows the same database to the large size
// (SCALE_FACTOR times, default 100; SCALE_EVENTS usage events at the large size, default
// 10,000,000) and measures again, then prints both and their ratio.
func TestScale(t *testing.T) {
	factor := envInt("SCALE_FACTOR", 100)
	largeEvents := envInt("SCALE_EVENTS", 10_000_000)
	small := size{Tenants: 100, Projects: 1000, OtherProjects: 1000, Events: largeEvents / factor, Overrides: 100, Outbox: 8000, IdemKeys: 10000}
	large := small.times(factor)
	large.Events = largeEvents

	st := setup(t)
	began := time.Now()
	st.seed(t, size{}, small)
	t.Logf("seeded the small size in %s", time.Since(began).Round(time.Second))
	atSmall := st.measure(t)
	began = time.Now()
	st.seed(t, small, large)
	t.Logf("seeded the large size in %s", time.Since(began).Round(time.Second))
	atLarge := st.measure(t)

	var b strings.Builder
	fmt.Fprintf(&b, "\nscale study: small = %+v\n             large = %+v\n\n", small, large)
	fmt.Fprintf(&b, "| %-46s | %12s | %12s | %8s |\n|%s|%s|%s|%s|\n", "measurement", "small", "large", "worse by", strings.Repeat("-", 48), strings.Repeat("-", 14), strings.Repeat("-", 14), strings.Repeat("-", 10))
	for i, m := range atSmall {
		l := atLarge[i]
		ratio := "n/a"
		if m.value > 0 && l.value > 0 {
			r := l.value / m.value
			if m.higherIsBetter {
				r = m.value / l.value
			}
			ratio = fmt.Sprintf("%.2fx", r)
		}
		fmt.Fprintf(&b, "| %-46s | %12s | %12s | %8s |\n", m.name+" ("+m.unit+")", m.show(), l.show(), ratio)
	}
	fmt.Fprintln(os.Stdout, b.String())
}

type state struct {
	s       *servertest.Server
	owner   *pgx.Conn
	probe   servertest.Tenant
	probeID uuid.UUID
	// ingest is the tenant whose events the ingestion measurement sends, so that they do not
	// add to the probe tenant's usage that the queries read.
	ingest uuid.UUID
	client *http.Client
	run    atomic.Int64
}

func setup(t *testing.T) *state {
	s := servertest.New(t)
	st := &state{s: s, owner: pgtest.Owner(t), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	s.PutMeter(t, "scale_tokens", map[string]any{"event_type": "scale", "aggregation": "sum", "value_property": "$.n"})
	s.PutMeter(t, "scale_peak", map[string]any{"event_type": "scale", "aggregation": "max", "value_property": "$.n"})
	s.PutPlan(t, "scale", map[string]any{
		"name": "Scale", "currency": "usd", "base_fee": "10",
		"rate_limit": map[string]any{"requests_per_second": 1000, "burst": 1000},
		"charges":    []any{map[string]any{"meter": "scale_tokens", "model": "standard", "unit_price": "0.001"}},
	})
	flag := map[string]any{"type": "boolean", "variants": map[string]bool{"on": true, "off": false}, "default_variant": "off", "enabled": true}
	if res := s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/flags/scale-beta", Token: s.PlatformToken(t), Body: flag}); res.Status != 201 {
		t.Fatalf("PUT flag: %d %s", res.Status, res.Body)
	}
	st.probe = s.Signup(t, "scale-probe")
	st.probeID = uuid.MustParse(st.probe.ID)
	s.OnPlan(t, st.probe, "scale")
	st.ingest = uuid.MustParse(s.Signup(t, "scale-ingest").ID)
	return st
}

func (st *state) exec(t *testing.T, what, sql string, args ...any) {
	t.Helper()
	began := time.Now()
	if _, err := st.owner.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("seed %s: %v", what, err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Logf("seed %s: %s", what, d.Round(100*time.Millisecond))
	}
}

// seed grows the data from size from to size to, in SQL (generate_series), as the owner.
// Seeded tenants are named scale-<n>; the n-th tenant is the same at both sizes.
func (st *state) seed(t *testing.T, from, to size) {
	st.exec(t, "tenants", `
		INSERT INTO tenants (id, name, slug, plan_code, created_at, updated_at)
		SELECT gen_random_uuid(), 'scale ' || g, 'scale-' || g, 'scale', now() - interval '50 days', now()
		  FROM generate_series($1::int + 1, $2::int) g`, from.Tenants, to.Tenants)
	st.exec(t, "tenant numbers", `CREATE TABLE IF NOT EXISTS scale_tenants (n int PRIMARY KEY, id uuid NOT NULL)`)
	st.exec(t, "tenant numbers", `
		INSERT INTO scale_tenants SELECT substr(slug, 7)::int, id FROM tenants WHERE slug ~ '^scale-[0-9]+$'
		ON CONFLICT DO NOTHING`)
	st.exec(t, "probe projects", `
		INSERT INTO projects (tenant_id, id, name, created_at, updated_at)
		SELECT $1, gen_random_uuid(), 'project ' || g, now(), now() FROM generate_series($2::int + 1, $3::int) g`,
		st.probeID, from.Projects, to.Projects)
	st.exec(t, "other projects", `
		INSERT INTO projects (tenant_id, id, name, created_at, updated_at)
		SELECT s.id, gen_random_uuid(), 'project ' || g, now(), now()
		  FROM generate_series($1::int + 1, $2::int) g JOIN scale_tenants s ON s.n = 1 + g % $3`,
		from.OtherProjects, to.OtherProjects, to.Tenants)
	st.exec(t, "overrides", `
		INSERT INTO flag_overrides (tenant_id, flag_key, variant, created_at, updated_at)
		SELECT id, 'scale-beta', 'on', now(), now() FROM scale_tenants WHERE n > $1 AND n <= $2`,
		from.Overrides, to.Overrides)
	st.exec(t, "outbox", `
		INSERT INTO outbox (tenant_id, id, type, occurred_at, data)
		SELECT s.id, gen_random_uuid(), 'project.created', now() - interval '1 minute', '{}'
		  FROM generate_series($1::int + 1, $2::int) g JOIN scale_tenants s ON s.n = 1 + g % $3`,
		from.Outbox, to.Outbox, to.Tenants)
	st.exec(t, "idempotency keys", `
		INSERT INTO idempotency_keys (tenant_id, principal_id, key, id, method, path, body_sha256, response_status, created_at, expires_at)
		SELECT s.id, s.id, 'k-' || g, gen_random_uuid(), 'POST', '/v1/projects', '\x00', 201, now() - interval '2 days', now() - interval '1 day'
		  FROM generate_series($1::int + 1, $2::int) g JOIN scale_tenants s ON s.n = 1 + g % $3`,
		from.IdemKeys, to.IdemKeys, to.Tenants)
	// Usage events over the last 30 days (inside the dedupe window: none may be reaped), with
	// their rollups. Statements stay short (~10 s): the outbox relay waits for every open
	// transaction on the server, so a long one would stall other databases' pipelines.
	const chunk = 200_000
	var restore []func()
	if to.Events-from.Events > 1_000_000 {
		restore = append(restore, st.withoutIndexes(t, "usage_events"), st.withoutIndexes(t, "usage_dedupe"))
	}
	for lo := from.Events; lo < to.Events; lo += chunk {
		hi := min(lo+chunk, to.Events)
		st.seedEvents(t, lo, hi, to.Tenants)
	}
	for _, f := range restore {
		f()
	}
	// Autovacuum keeps a live database's rollups all-visible, which their index-only scans
	// need; a seed is faster than autovacuum's pace.
	st.exec(t, "vacuum rollups", "VACUUM (ANALYZE) usage_rollups")
	st.exec(t, "analyze", "ANALYZE")
	st.exec(t, "checkpoint", "CHECKPOINT")
}

// withoutIndexes drops table's indexes and unique constraints, and answers a function that
// builds them again: loading millions of rows and then building an index is several times
// faster than keeping it up row by row.
func (st *state) withoutIndexes(t *testing.T, table string) func() {
	ctx := context.Background()
	rows, _ := st.owner.Query(ctx, `
		SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
		 WHERE conrelid = $1::regclass AND contype IN ('p', 'u')`, table)
	type constraint struct{ name, def string }
	cons, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (constraint, error) {
		var c constraint
		return c, r.Scan(&c.name, &c.def)
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ = st.owner.Query(ctx, `
		SELECT indexname, indexdef FROM pg_indexes
		 WHERE schemaname = 'public' AND tablename = $1
		   AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass)`, table)
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (constraint, error) {
		var c constraint
		return c, r.Scan(&c.name, &c.def)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cons {
		st.exec(t, "drop "+c.name, "ALTER TABLE "+table+" DROP CONSTRAINT "+c.name)
	}
	for _, i := range idx {
		st.exec(t, "drop "+i.name, "DROP INDEX "+i.name)
	}
	return func() {
		st.exec(t, "maintenance_work_mem", "SET maintenance_work_mem = '512MB'")
		for _, c := range cons {
			st.exec(t, "build "+c.name, "ALTER TABLE "+table+" ADD CONSTRAINT "+c.name+" "+c.def)
		}
		for _, i := range idx {
			st.exec(t, "build "+i.name, i.def)
		}
	}
}

// seedEvents stores events lo+1..hi, with their dedupe keys and rollups: every tenth the
// probe tenant's, the others spread over the seeded tenants; times spread over the last 30
// days (inside the dedupe window, so the reaper could delete none), values 0..99.
func (st *state) seedEvents(t *testing.T, lo, hi, tenants int) {
	st.exec(t, fmt.Sprintf("usage events %d-%d", lo, hi), `
		WITH ins AS (
		    INSERT INTO usage_events (tenant_id, source, id, type, subject, time, data, received_at)
		    SELECT CASE WHEN g % 10 = 0 THEN $3 ELSE s.id END, 'scale', 'seed-' || g || '-' || md5(g::text), 'scale', NULL,
		           now() - (g % 2592000) * interval '1 second', jsonb_build_object('n', g % 100), now()
		      FROM generate_series($1::int + 1, $2::int) g JOIN scale_tenants s ON s.n = 1 + g % $4
		    RETURNING tenant_id, source, id, time, data, received_at),
		dedupe AS (
		    INSERT INTO usage_dedupe (tenant_id, key, received_at)
		    SELECT tenant_id, app.usage_dedupe_key(source, id), received_at FROM ins)
		INSERT INTO usage_rollups (tenant_id, meter_key, bucket_start, group_key, value, events)
		SELECT tenant_id, 'scale_tokens', date_bin('15 minutes', time, 'epoch'), '{}', sum((data->>'n')::numeric), count(*)
		  FROM ins GROUP BY 1, 3
		ON CONFLICT (tenant_id, meter_key, bucket_start, group_key) DO UPDATE
		   SET value = usage_rollups.value + excluded.value, events = usage_rollups.events + excluded.events`,
		lo, hi, st.probeID, tenants)
}

// measurement is one line of the table.
type measurement struct {
	name           string
	unit           string
	value          float64
	higherIsBetter bool
	note           string
}

func (m measurement) show() string {
	if m.note != "" {
		return m.note
	}
	if m.value >= 100 {
		return fmt.Sprintf("%.0f", m.value)
	}
	return fmt.Sprintf("%.2f", m.value)
}

// timed answers the median duration of n calls of f, in milliseconds, after 5 warm-up calls.
func timed(t *testing.T, n int, f func() error) float64 {
	t.Helper()
	for range 5 {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		began := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		ds[i] = time.Since(began)
	}
	slices.Sort(ds)
	return float64(ds[n/2].Microseconds()) / 1000
}

// get sends a GET (or, with a body, a POST) as the probe tenant and wants 200.
func (st *state) request(method, path string, body any, token string) func() error {
	return func() error {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, st.s.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := st.client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		return nil
	}
}

func (st *state) measure(t *testing.T) []measurement {
	ctx := context.Background()
	token := st.s.TokenFor(t, st.probe)
	get := func(path string) func() error { return st.request("GET", path, nil, token) }
	var ms []measurement
	add := func(name, unit string, v float64) { ms = append(ms, measurement{name: name, unit: unit, value: v}) }

	var project, middle string
	if err := st.owner.QueryRow(ctx, "SELECT id FROM projects WHERE tenant_id = $1 ORDER BY random() LIMIT 1", st.probeID).Scan(&project); err != nil {
		t.Fatal(err)
	}
	if err := st.owner.QueryRow(ctx, "SELECT id FROM projects WHERE tenant_id = $1 ORDER BY id DESC OFFSET (SELECT count(*) / 2 FROM projects WHERE tenant_id = $1) LIMIT 1", st.probeID).Scan(&middle); err != nil {
		t.Fatal(err)
	}
	add("GET /v1/projects/{id}", "ms p50", timed(t, 200, get("/v1/projects/"+project)))
	add("GET /v1/projects first page", "ms p50", timed(t, 100, get("/v1/projects?limit=50")))
	cursor := uuid.MustParse(middle)
	add("GET /v1/projects middle page", "ms p50", timed(t, 100, get("/v1/projects?limit=50&cursor="+base64.RawURLEncoding.EncodeToString(cursor[:]))))

	now := time.Now().UTC()
	to := now.Truncate(metering.RollupGranule)
	from := to.AddDate(0, 0, -30)
	q := func(meter string, from, to time.Time, extra string) string {
		return fmt.Sprintf("/v1/meters/%s/usage?from=%s&to=%s%s", meter, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), extra)
	}
	add("usage sum, 30 days by day", "ms p50", timed(t, 50, get(q("scale_tokens", from, to, "&window=day"))))
	add("usage sum, 30 days total", "ms p50", timed(t, 50, get(q("scale_tokens", from, to, ""))))
	ragged := get(q("scale_tokens", from.Add(7*time.Minute+123*time.Millisecond), to.Add(-4*time.Minute), ""))
	if ragged() == nil {
		add("usage sum, 30 days, ragged ends", "ms p50", timed(t, 50, ragged))
	} else {
		ms = append(ms, measurement{name: "usage sum, 30 days, ragged ends", unit: "ms p50", note: "400"})
	}
	add("usage max, last hour (raw events)", "ms p50", timed(t, 20, get(q("scale_peak", to.Add(-time.Hour), to, ""))))
	add("GET /v1/invoices/upcoming", "ms p50", timed(t, 50, get("/v1/invoices/upcoming")))
	add("OFREP evaluate one flag", "ms p50", timed(t, 200, st.request("POST", "/ofrep/v1/evaluate/flags/scale-beta", map[string]any{"context": map[string]any{}}, token)))

	// An operator's override PUT, on a tenant without one, alternating variants.
	var other string
	if err := st.owner.QueryRow(ctx, "SELECT id FROM scale_tenants ORDER BY n DESC LIMIT 1").Scan(&other); err != nil {
		t.Fatal(err)
	}
	platform := st.s.PlatformToken(t)
	i := 0
	add("PUT flag override", "ms p50", timed(t, 20, func() error {
		i++
		return st.request("PUT", "/v1/admin/flags/scale-beta/overrides/"+other, map[string]string{"variant": []string{"on", "off"}[i%2]}, platform)()
	}))

	// The billing period closer with nothing due: its first run stores periods; the second is
	// the no-op every minute pays.
	if _, err := st.s.App.Invoices.Close(ctx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := st.s.App.Invoices.Close(ctx); err != nil {
		t.Fatal(err)
	}
	add("billing closer, no-op run", "ms", float64(time.Since(began).Microseconds())/1000)

	add("outbox lag metric query", "ms p50", timed(t, 20, func() error {
		_, err := st.owner.Exec(ctx, "SELECT app.outbox_oldest_unpublished()")
		return err
	}))
	// One reaper call of 1000 keys (it deletes them: each size seeds enough for 25 calls).
	add("idempotency reaper, 1000 keys", "ms p50", timed(t, 10, func() error {
		_, err := st.owner.Exec(ctx, "SELECT app.reap_idempotency_keys(now(), 1000)")
		return err
	}))

	rate := st.ingestion(t)
	ms = append(ms, measurement{name: "ingestion in-process, 2 workers", unit: "events/s", value: rate, higherIsBetter: true})
	return ms
}

// ingestion answers the median of three runs of 20 batches of 1000 fresh events of a tenant
// of their own through Usage.Ingest, two workers, each run after a CHECKPOINT (as
// BenchmarkIngestion).
func (st *state) ingestion(t *testing.T) float64 {
	ctx := context.Background()
	meters, err := st.s.App.Usage.Meters.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seq atomic.Int64
	batch := func() []metering.UsageEvent {
		run := st.run.Add(1)
		evs := make([]servertest.CloudEvent, 1000)
		now := time.Now().UTC()
		for i := range evs {
			n := seq.Add(1)
			evs[i] = servertest.CloudEvent{SpecVersion: "1.0", ID: fmt.Sprintf("ing-%d-%d-%s", run, n, uuid.NewString()), Source: "scale/ingest", Type: "scale",
				Time: now.Add(-time.Duration(n%3600) * time.Second).Format(time.RFC3339Nano), Data: map[string]any{"n": n % 100}}
		}
		body, _ := json.Marshal(evs)
		out, err := metering.ParseEvents(body, meters, now)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var rates []float64
	for range 3 {
		if _, err := st.owner.Exec(ctx, "CHECKPOINT"); err != nil {
			t.Fatal(err)
		}
		batches := make(chan []metering.UsageEvent, 20)
		for range 20 {
			batches <- batch()
		}
		close(batches)
		var wg sync.WaitGroup
		began := time.Now()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					if _, err := st.s.App.Usage.Ingest(ctx, st.ingest, b); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rates = append(rates, 20000/time.Since(began).Seconds())
	}
	slices.Sort(rates)
	return rates[1]
}
