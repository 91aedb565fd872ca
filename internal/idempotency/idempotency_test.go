package idempotency_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	db     *postgres.DB
	store  *idempotency.Store
	clock  *clock.Fixed
	tenant uuid.UUID
	user   uuid.UUID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		db:     pgtest.DB(t),
		clock:  clock.NewFixed(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		tenant: uuid.Must(uuid.NewV7()),
		user:   uuid.Must(uuid.NewV7()),
	}
	f.store = &idempotency.Store{DB: f.db, Clock: f.clock, TTL: 24 * time.Hour, LockTimeout: time.Minute}
	err := f.db.InTenantTx(context.Background(), f.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, 't', $2, 'free')",
			f.tenant, "idem-"+f.tenant.String()[24:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// server mounts handler behind the middleware, as the tenant's user.
func (f *fixture) server(t *testing.T, opt idempotency.Options, handler httpx.HandlerFunc) *httptest.Server {
	m := &idempotency.Middleware{Store: f.store}
	var h http.Handler = handler
	h = m.Handler(opt)(h)
	h = httpx.Recover(h)
	h = httpx.WithRequestID(h)
	p := auth.Principal{Kind: auth.KindUser, TenantID: f.tenant, ID: f.user, Role: auth.RoleOwner}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(ts.Close)
	return ts
}

// createProject is a plain database handler: it inserts a project through InTenantTx.
func (f *fixture) createProject(calls *atomic.Int64) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		id := uuid.Must(uuid.NewV7())
		err := f.db.InTenantTx(r.Context(), f.tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(r.Context(), "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, $3)", f.tenant, id, string(body))
			return err
		})
		if err != nil {
			return err
		}
		httpx.JSON(w, http.StatusCreated, map[string]string{"id": id.String(), "name": string(body)})
		return nil
	}
}

func (f *fixture) projects(t *testing.T) int {
	var n int
	err := f.db.InTenantTx(context.Background(), f.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM projects").Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type answer struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, url, key, body string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if key != "" {
		req.Header.Set(idempotency.Header, key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

func TestParseKey(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "abc", `"abc"`: "abc", ` "a\"b" `: `a"b`, `"a\\b"`: `a\b`, "with space": "with space",
		strings.Repeat("k", 255): strings.Repeat("k", 255),
	} {
		if got, ok := idempotency.ParseKey(in); !ok || got != want {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", `""`, strings.Repeat("k", 256), `"abc`, `"a"b"`, `"a\x"`, "caf\u00e9", "tab\there"} {
		if got, ok := idempotency.ParseKey(in); ok {
			t.Errorf("ParseKey(%q) = %q, want invalid", in, got)
		}
	}
}

// A retry replays the first answer byte for byte, and runs nothing.
func TestReplayIsByteForByte(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int64
	ts := f.server(t, idempotency.Options{}, f.createProject(&calls))

	first := post(t, ts.URL+"/projects", "k-replay", "alpha")
	if first.status != http.StatusCreated || first.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("first: %d %v %s", first.status, first.header, first.body)
	}
	for range 3 {
		again := post(t, ts.URL+"/projects", "k-replay", "alpha")
		if again.status != first.status || again.body != first.body || again.header.Get(idempotency.ReplayedHeader) != "true" ||
			again.header.Get("Content-Type") != first.header.Get("Content-Type") {
			t.Fatalf("replay: %d %v %q, want %d %q replayed", again.status, again.header, again.body, first.status, first.body)
		}
	}
	if calls.Load() != 1 || f.projects(t) != 1 {
		t.Fatalf("handler ran %d times, %d projects; want 1 and 1", calls.Load(), f.projects(t))
	}
	// Without a key, nothing is deduplicated.
	post(t, ts.URL+"/projects", "", "beta")
	post(t, ts.URL+"/projects", "", "beta")
	if f.projects(t) != 3 {
		t.Fatalf("%d projects after two keyless posts, want 3", f.projects(t))
	}
}

// The same key with another body or another path is a 422, and runs nothing.
func TestMismatchIs422(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int64
	ts := f.server(t, idempotency.Options{}, f.createProject(&calls))
	post(t, ts.URL+"/projects", "k-mismatch", "alpha")
	for _, c := range []struct{ path, body string }{{"/projects", "other"}, {"/elsewhere", "alpha"}} {
		res := post(t, ts.URL+c.path, "k-mismatch", c.body)
		if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "idempotency_key_mismatch") {
			t.Errorf("POST %s %q: %d %s, want 422 idempotency_key_mismatch", c.path, c.body, res.status, res.body)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", calls.Load())
	}
}

func TestMissingAndMalformedKeys(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int64
	ts := f.server(t, idempotency.Options{Required: true}, f.createProject(&calls))
	if res := post(t, ts.URL+"/pay", "", "x"); res.status != 400 || !strings.Contains(res.body, "idempotency_key_missing") {
		t.Errorf("no key: %d %s", res.status, res.body)
	}
	if res := post(t, ts.URL+"/pay", strings.Repeat("k", 256), "x"); res.status != 400 || !strings.Contains(res.body, "idempotency_key_invalid") {
		t.Errorf("256 characters: %d %s", res.status, res.body)
	}
	if calls.Load() != 0 {
		t.Fatalf("handler ran %d times, want 0", calls.Load())
	}
}

// Concurrent requests with one key: one effect; every answer is the 201 or a 409.
func TestConcurrentSameKeyAppliesOnce(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int64
	slow := func(w http.ResponseWriter, r *http.Request) error {
		time.Sleep(20 * time.Millisecond) // keep the first in flight while the others arrive
		return f.createProject(&calls)(w, r)
	}
	ts := f.server(t, idempotency.Options{}, slow)
	var wg sync.WaitGroup
	answers := make([]answer, 50)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = post(t, ts.URL+"/projects", "k-race", "gamma")
		}()
	}
	wg.Wait()
	var created string
	for _, a := range answers {
		switch a.status {
		case http.StatusCreated:
			if created != "" && a.body != created {
				t.Errorf("two different 201 bodies: %s and %s", created, a.body)
			}
			created = a.body
		case http.StatusConflict:
			if !strings.Contains(a.body, "idempotency_key_in_use") || a.header.Get("Retry-After") == "" {
				t.Errorf("409 without the in-use code or Retry-After: %v %s", a.header, a.body)
			}
		default:
			t.Errorf("unexpected answer %d %s", a.status, a.body)
		}
	}
	if calls.Load() != 1 || f.projects(t) != 1 {
		t.Fatalf("handler ran %d times, %d projects; want 1 and 1", calls.Load(), f.projects(t))
	}
}

// A panic or a 5xx stores nothing and releases the key: the retry runs. Its effects are
// rolled back with it in the atomic mode.
func TestFailuresReleaseTheKey(t *testing.T) {
	for _, phased := range []bool{false, true} {
		t.Run(fmt.Sprintf("phased=%v", phased), func(t *testing.T) {
			f := newFixture(t)
			var calls atomic.Int64
			fail := map[int64]string{1: "panic", 2: "500"}
			ts := f.server(t, idempotency.Options{Phased: phased}, func(w http.ResponseWriter, r *http.Request) error {
				n := calls.Add(1)
				switch fail[n] {
				case "panic":
					panic("boom")
				case "500":
					return fmt.Errorf("a dependency failed")
				}
				httpx.JSON(w, http.StatusCreated, map[string]int64{"attempt": n})
				return nil
			})
			if res := post(t, ts.URL+"/x", "k-fail", "b"); res.status != 500 {
				t.Fatalf("panicking attempt: %d %s", res.status, res.body)
			}
			if res := post(t, ts.URL+"/x", "k-fail", "b"); res.status != 500 {
				t.Fatalf("failing attempt: %d %s", res.status, res.body)
			}
			res := post(t, ts.URL+"/x", "k-fail", "b")
			if res.status != 201 || !strings.Contains(res.body, `"attempt":3`) {
				t.Fatalf("third attempt: %d %s, want the handler to run again", res.status, res.body)
			}
			if again := post(t, ts.URL+"/x", "k-fail", "b"); again.body != res.body {
				t.Fatalf("after success: %s, want the replay %s", again.body, res.body)
			}
		})
	}
}

// 4xx answers are stored too (a decline, a validation error): the retry gets the same.
func TestClientErrorsAreStored(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int64
	ts := f.server(t, idempotency.Options{}, func(w http.ResponseWriter, r *http.Request) error {
		calls.Add(1)
		httpx.JSON(w, http.StatusPaymentRequired, map[string]string{"code": "payment_declined"})
		return nil
	})
	a, b := post(t, ts.URL+"/x", "k-402", "b"), post(t, ts.URL+"/x", "k-402", "b")
	if a.status != 402 || b.status != 402 || b.body != a.body || b.header.Get(idempotency.ReplayedHeader) != "true" || calls.Load() != 1 {
		t.Fatalf("402 not stored: %v %v, calls %d", a, b, calls.Load())
	}
}

func request(f *fixture, key string) idempotency.Request {
	return idempotency.Request{TenantID: f.tenant, Principal: f.user, Key: key, Method: "POST", Path: "/v1/payments", BodyHash: sha256.Sum256([]byte("{}"))}
}

// A fresh lock answers 409; one older than the lock timeout is taken over, with the same key
// id and recovery point, so the new request resumes the old one's work.
func TestStaleLockIsTakenOver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := request(f, "k-stale")
	ts := f.server(t, idempotency.Options{Phased: true}, func(w http.ResponseWriter, r *http.Request) error {
		k, _ := idempotency.FromContext(r.Context())
		httpx.JSON(w, http.StatusCreated, map[string]string{"key_id": k.ID(), "point": k.RecoveryPoint()})
		return nil
	})

	// A request claims the key, reaches a recovery point, and dies.
	if _, err := idempotency.ClaimForTest(ctx, f.store, req, "charge_created"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(30 * time.Second)
	if res := post(t, ts.URL+"/v1/payments", "k-stale", "{}"); res.status != http.StatusConflict {
		t.Fatalf("fresh lock: %d %s, want 409", res.status, res.body)
	}
	f.clock.Advance(31 * time.Second)
	res := post(t, ts.URL+"/v1/payments", "k-stale", "{}")
	if res.status != http.StatusCreated || !strings.Contains(res.body, `"point":"charge_created"`) {
		t.Fatalf("stale lock: %d %s, want the takeover to resume at charge_created", res.status, res.body)
	}
}

// TestTakenOverRequestCannotWrite: a request that outlives its lock, and whose key a retry
// took over and answered, can neither record a recovery point nor store its answer: it gets
// 409, and the key keeps answering the retry's outcome.
func TestTakenOverRequestCannotWrite(t *testing.T) {
	f := newFixture(t)
	started, proceed := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	ts := f.server(t, idempotency.Options{Phased: true}, func(w http.ResponseWriter, r *http.Request) error {
		k, _ := idempotency.FromContext(r.Context())
		if calls.Add(1) == 1 {
			close(started)
			<-proceed // the first request stalls past its lock's lifetime
		}
		if err := k.Advance(r.Context(), "charge_created", map[string]int64{"call": calls.Load()}, nil); err != nil {
			return err
		}
		httpx.JSON(w, http.StatusCreated, map[string]string{"by": r.Header.Get("X-Attempt")})
		return nil
	})
	send := func(attempt string) answer {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/payments", strings.NewReader("{}"))
		req.Header.Set(idempotency.Header, "k-fenced")
		req.Header.Set("X-Attempt", attempt)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return answer{}
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header, string(b)}
	}

	first := make(chan answer, 1)
	go func() { first <- send("first") }()
	<-started
	f.clock.Advance(2 * time.Minute) // the first request's lock is stale now
	if res := send("retry"); res.status != http.StatusCreated || !strings.Contains(res.body, `"by":"retry"`) {
		t.Fatalf("the retry that took over: %d %s, want 201 by retry", res.status, res.body)
	}
	close(proceed)
	if res := <-first; res.status != http.StatusConflict || !strings.Contains(res.body, "idempotency_key_in_use") {
		t.Fatalf("the request that lost its lock: %d %s, want 409 idempotency_key_in_use", res.status, res.body)
	}
	if res := send("later"); res.status != http.StatusCreated || !strings.Contains(res.body, `"by":"retry"`) ||
		res.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a later retry: %d %s (replayed %q), want the retry's answer replayed", res.status, res.body, res.header.Get("Idempotent-Replayed"))
	}
}

// The reaper deletes expired keys only.
func TestReaperDeletesExpiredKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ts := f.server(t, idempotency.Options{}, f.createProject(new(atomic.Int64)))
	post(t, ts.URL+"/projects", "k-old", "old")
	f.clock.Advance(23 * time.Hour)
	post(t, ts.URL+"/projects", "k-new", "new")
	f.clock.Advance(2 * time.Hour)
	n, err := f.store.Reap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 { // other tests' keys of this package's database may expire too
		t.Fatalf("reaped %d keys, want at least the expired one", n)
	}
	// The reaped key runs again; the kept one still replays.
	if res := post(t, ts.URL+"/projects", "k-new", "new"); res.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("kept key did not replay: %d %s", res.status, res.body)
	}
	if res := post(t, ts.URL+"/projects", "k-old", "old"); res.header.Get(idempotency.ReplayedHeader) != "" || res.status != 201 {
		t.Errorf("reaped key replayed: %d %s", res.status, res.body)
	}
}

// A run deletes every expired key, more than a batch of them, and keeps the live ones and
// the expired ones stopped mid-way past a recovery point, which the completer still needs.
func TestReaperDeletesInBatches(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	owner := pgtest.Owner(t)
	now := f.clock.Now()
	insert := func(prefix string, n int, expires time.Time, point string, status *int) {
		t.Helper()
		_, err := owner.Exec(ctx, `
			INSERT INTO idempotency_keys (tenant_id, principal_id, key, id, method, path, body_sha256,
			                              recovery_point, response_status, created_at, expires_at)
			SELECT $1, $2, $3 || g, gen_random_uuid(), 'POST', '/test/reaper', '\x00', $4, $5, $6, $7
			  FROM generate_series(1, $8) g`,
			f.tenant, f.user, prefix, point, status, expires.Add(-24*time.Hour), expires, n)
		if err != nil {
			t.Fatal(err)
		}
	}
	// Off the completer's paths, and gone after the test: other tests share the database.
	t.Cleanup(func() { owner.Exec(ctx, "DELETE FROM idempotency_keys WHERE path = '/test/reaper'") })
	answered := 201
	insert("expired-", 2500, now.Add(-time.Hour), idempotency.Started, &answered)
	insert("live-", 10, now.Add(time.Hour), idempotency.Started, &answered)
	insert("stopped-", 3, now.Add(-time.Hour), "charge_created", nil)

	if _, err := f.store.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]int{"expired-": 0, "live-": 10, "stopped-": 3} {
		var got int
		if err := owner.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 AND key ^@ $2",
			f.tenant, prefix).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s keys: %d left, want %d", prefix, got, want)
		}
	}
}

// Each batch is found through the index of reapable keys and deleted by ctid, so a call's
// cost does not grow with the expired keys waiting (a join on the primary key was planned as
// a hash join over the whole table).
func TestReaperUsesIndex(t *testing.T) {
	plan := pgtest.ExplainFunction(t, pgtest.Owner(t), "app.reap_idempotency_keys(timestamptz, int)")
	if !strings.Contains(plan, "idempotency_keys_reapable_idx") || !strings.Contains(plan, "Tid Scan") ||
		strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash Join") {
		t.Errorf("the reaper's batch is not found through idempotency_keys_reapable_idx and deleted by ctid:\n%s", plan)
	}
}

// The completer finds keys abandoned past a recovery point once their lock is stale.
func TestAbandonedKeysAreFound(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := idempotency.ClaimForTest(ctx, f.store, request(f, "k-abandoned"), "charge_created"); err != nil {
		t.Fatal(err)
	}
	if _, err := idempotency.ClaimForTest(ctx, f.store, request(f, "k-fresh-start"), idempotency.Started); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.Abandoned(ctx, "/v1/payments", 10); len(got) != 0 {
		t.Fatalf("found %v before the lock timeout", got)
	}
	f.clock.Advance(2 * time.Minute)
	got, err := f.store.Abandoned(ctx, "/v1/payments", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != "k-abandoned" {
		t.Fatalf("abandoned = %+v, want only k-abandoned", got)
	}
}
