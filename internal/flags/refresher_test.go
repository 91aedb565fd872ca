package flags

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
)

// deadline bounds how long a test waits for a change to arrive. Propagation takes
// milliseconds; the deadline only keeps a broken build from hanging.
const deadline = 10 * time.Second

func serves(r *replica, key string, t Target, variant string, reason Reason) func() bool {
	return func() bool {
		res := r.client.Current().Evaluate(key, TypeAny, t)
		return res.Variant == variant && res.Reason == reason
	}
}

// countingSource counts every call that reaches the store.
type countingSource struct {
	Source
	calls atomic.Int64
}

func (c *countingSource) Snapshot(ctx context.Context) (*Snapshot, error) {
	c.calls.Add(1)
	return c.Source.Snapshot(ctx)
}

func (c *countingSource) Version(ctx context.Context) (int64, error) {
	c.calls.Add(1)
	return c.Source.Version(ctx)
}

// Test 3: evaluations, through every entry point, never reach the store.
func TestEvaluationsNeverCallTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var counter *countingSource
	r := newReplica(t, replicaOptions{source: func(s Source) Source {
		counter = &countingSource{Source: s}
		return counter
	}})
	key := uniqueKey("counted")
	override, other := newTenant(t, "free"), uuid.New()
	in := flagInput(30, true)
	in.Rules = []Rule{{Conditions: []Condition{planIs("enterprise")}, Variant: "on"}, percent(30)}
	if _, _, err := r.admin.PutFlag(ctx, "test", key, in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.admin.SetOverride(ctx, "test", key, override, OverrideInput{Variant: "on"}); err != nil {
		t.Fatal(err)
	}
	tenants := []Tenant{{ID: override, Plan: "free"}, {ID: other, Plan: "enterprise"}, {ID: other, Plan: "free"}}
	r.client.Tenant = func(ctx context.Context) (Tenant, bool) { return tenants[ctx.Value(planKey{}).(int)], true }
	h := &Handler{Client: r.client}

	before := counter.calls.Load()
	for i := range 10_000 {
		tctx := context.WithValue(ctx, planKey{}, i%len(tenants))
		switch i % 4 {
		case 0:
			r.client.Bool(tctx, key, false)
		case 1:
			r.client.Current().Evaluate(key, TypeBoolean, Target{Tenant: tenants[i%len(tenants)]})
		case 2:
			r.client.Evaluate(r.client.Pin(tctx), key)
		case 3:
			req := httptest.NewRequestWithContext(tctx, http.MethodPost, "/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{"targetingKey":"u"}}`))
			rec := httptest.NewRecorder()
			h.OFREPBulk(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("OFREP bulk: %d %s", rec.Code, rec.Body)
			}
		}
	}
	if n := counter.calls.Load() - before; n != 0 {
		t.Errorf("10,000 evaluations made %d calls to the store", n)
	}
}

// Test 4: a change made on one replica is served by another (its own snapshot, the same
// PostgreSQL and Redis) through pub/sub, and through the version poll when its pub/sub is
// cut; the kill switch travels the same way.
func TestChangesReachTheOtherReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	channel := Channel("test:" + randomHex(6) + ":")
	const poll = 300 * time.Millisecond
	a := newReplica(t, replicaOptions{channel: channel})
	b := newReplica(t, replicaOptions{channel: channel}) // polls hourly: only pub/sub reaches it
	redisProxy := newProxy(t, redisAddr())
	c := newReplica(t, replicaOptions{channel: channel, redisAddr: redisProxy.Listen, poll: poll})
	key := uniqueKey("propagated")
	user := Target{Key: "user-1"}

	if _, _, err := a.admin.PutFlag(ctx, "test", key, flagInput(100, true)); err != nil {
		t.Fatal(err)
	}
	if !serves(a, key, user, "on", ReasonSplit)() {
		t.Fatal("the replica that made the change does not serve it when it answers")
	}
	t.Logf("pub/sub: b in %s", eventually(t, deadline, "b serves the new flag", serves(b, key, user, "on", ReasonSplit)))
	eventually(t, deadline, "c serves the new flag", serves(c, key, user, "on", ReasonSplit))

	redisProxy.Stop() // c's pub/sub is cut; its poll must carry the next changes
	if _, _, err := a.admin.PutFlag(ctx, "test", key, flagInput(0, true)); err != nil {
		t.Fatal(err)
	}
	t.Logf("pub/sub: b in %s", eventually(t, deadline, "b serves the change", serves(b, key, user, "off", ReasonSplit)))
	t.Logf("poll (%s) with pub/sub cut: c in %s", poll, eventually(t, deadline, "c serves the change", serves(c, key, user, "off", ReasonSplit)))

	// The kill switch.
	if _, _, err := a.admin.PutFlag(ctx, "test", key, flagInput(100, false)); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill switch: b in %s", eventually(t, deadline, "b serves the kill switch", serves(b, key, user, "off", ReasonDisabled)))
	t.Logf("kill switch: c in %s", eventually(t, deadline, "c serves the kill switch", serves(c, key, user, "off", ReasonDisabled)))

	if err := redisProxy.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.admin.PutFlag(ctx, "test", key, flagInput(100, true)); err != nil {
		t.Fatal(err)
	}
	eventually(t, deadline, "c serves changes after Redis is back", serves(c, key, user, "on", ReasonSplit))
}

// Test 5: while Redis or PostgreSQL (or both) is cut off, evaluations go on answering from the
// last snapshot, without an error; once back, the replica catches up.
func TestOutagesKeepServingTheLastSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	channel := Channel("test:" + randomHex(6) + ":")
	const poll = 100 * time.Millisecond
	a := newReplica(t, replicaOptions{channel: channel})
	dbURL, pgProxy := dbViaProxy(t)
	redisProxy := newProxy(t, redisAddr())
	d := newReplica(t, replicaOptions{channel: channel, redisAddr: redisProxy.Listen, dbURL: dbURL, poll: poll})
	tenant := Tenant{ID: uuid.New(), Plan: "free"}
	d.client.Tenant = func(context.Context) (Tenant, bool) { return tenant, true }
	h := &Handler{Client: d.client}
	mux := chi.NewRouter()
	mux.Post("/ofrep/v1/evaluate/flags/{key}", h.OFREPFlag)
	key := uniqueKey("outage")
	user := Target{Key: "user-1"}

	pct := 100
	variant := func(pct int) string {
		if pct == 100 {
			return "on"
		}
		return "off"
	}
	if _, _, err := a.admin.PutFlag(ctx, "test", key, flagInput(pct, true)); err != nil {
		t.Fatal(err)
	}
	eventually(t, deadline, "d serves the flag", serves(d, key, user, "on", ReasonSplit))

	for _, cut := range []struct {
		name    string
		proxies []*toxiproxy.Proxy
	}{
		{"redis", []*toxiproxy.Proxy{redisProxy}},
		{"postgres", []*toxiproxy.Proxy{pgProxy}},
		{"both", []*toxiproxy.Proxy{redisProxy, pgProxy}},
	} {
		for _, p := range cut.proxies {
			p.Stop()
		}
		pct = 100 - pct // a change d may not hear of while cut off
		if _, _, err := a.admin.PutFlag(ctx, "test", key, flagInput(pct, true)); err != nil {
			t.Fatal(err)
		}
		// Several polls fail meanwhile; every evaluation still answers.
		for end := time.Now().Add(5 * poll); time.Now().Before(end); {
			res := d.client.Current().Evaluate(key, TypeAny, user)
			if res.Reason != ReasonSplit || (res.Variant != "on" && res.Variant != "off") {
				t.Fatalf("%s cut: evaluation answered %+v", cut.name, res)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost,
				"/ofrep/v1/evaluate/flags/"+key, strings.NewReader(`{"context":{"targetingKey":"user-1"}}`)))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s cut: OFREP answered %d %s", cut.name, rec.Code, rec.Body)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// With only PostgreSQL cut, the change may reach d on pub/sub, which carries it whole
		// (a replica applies it when it follows on from its version); with both cut, nothing can.
		if cut.name == "both" && !serves(d, key, user, variant(100-pct), ReasonSplit)() {
			t.Errorf("%s cut: the snapshot changed with neither Redis nor the database", cut.name)
		}
		for _, p := range cut.proxies {
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s back: d caught up in %s", cut.name, eventually(t, deadline, cut.name+" back: d catches up", serves(d, key, user, variant(pct), ReasonSplit)))
	}
}

// Test 6: readers never see part of a multi-flag change. A change of eight flags commits in
// one transaction; readers evaluating all eight, from one snapshot or through a pinned
// context, always find them alike. Run with the race detector.
func TestReadersNeverSeeHalfAChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newReplica(t, replicaOptions{})
	prefix := uniqueKey("multi")
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%d", prefix, i)
		if _, _, err := r.admin.PutFlag(ctx, "test", keys[i], flagInput(0, true)); err != nil {
			t.Fatal(err)
		}
	}
	r.client.Tenant = func(context.Context) (Tenant, bool) { return Tenant{ID: tenantA}, true }

	var (
		stop         atomic.Bool
		wg           sync.WaitGroup
		seen         [2]atomic.Int64 // observations of all-off, all-on
		inconsistent atomic.Int64
	)
	for reader := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			for !stop.Load() {
				var on int
				if reader%2 == 0 { // one snapshot for every flag, as the bulk endpoints do
					s := r.client.Current()
					if s.Version() < last {
						inconsistent.Add(1)
					}
					last = s.Version()
					for _, k := range keys {
						if s.Evaluate(k, TypeBoolean, Target{Key: "u"}).Value == true {
							on++
						}
					}
				} else { // a pinned request context, as the Go API in a handler does
					pinned := r.client.Pin(ctx)
					for _, k := range keys {
						if r.client.Bool(pinned, k, false) {
							on++
						}
					}
				}
				switch on {
				case 0:
					seen[0].Add(1)
				case len(keys):
					seen[1].Add(1)
				default:
					inconsistent.Add(1)
				}
				runtime.Gosched() // spinning readers would starve the writer of the test's two CPUs
			}
		}()
	}

	owner := pgtest.Owner(t)
	for gen := range 40 {
		variant := []string{"off", "on"}[gen%2]
		tx, err := owner.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := tx.QueryRow(ctx, "SELECT version + 1 FROM flag_config FOR UPDATE").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE flags SET default_variant = $1, rules = '[]', version = $2 WHERE key = ANY($3)", variant, v, keys); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE flag_config SET version = $1", v); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.refresher.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if n := inconsistent.Load(); n > 0 {
		t.Errorf("%d reads saw part of a change (or a version going back)", n)
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Errorf("readers saw all-off %d times and all-on %d times: the changes did not interleave with them", seen[0].Load(), seen[1].Load())
	}
}

// A stopped refresher keeps its snapshot, and Stop without Start is harmless.
func TestStopKeepsTheSnapshot(t *testing.T) {
	t.Parallel()
	(&Refresher{}).Stop()
	r := newReplica(t, replicaOptions{})
	s := r.client.Current()
	r.refresher.Stop()
	if r.client.Current() != s || s == nil {
		t.Error("Stop dropped or replaced the snapshot")
	}
}
