package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/platform/proctest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// newChaosProxy starts an in-process toxiproxy in front of upstream on a loopback port: Stop
// cuts every connection through it and refuses new ones; Start brings it back.
func newChaosProxy(t *testing.T, upstream string) *toxiproxy.Proxy {
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(server, "chaos-"+uuid.NewString()[:8], "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// chaosLedger records what the service accepted, for the audit.
type chaosLedger struct {
	mu        sync.Mutex
	projects  map[string]string // project id → tenant id, for every 201
	events    map[string]string // usage event id → tenant id, for every accepted batch
	crossings []string          // answers that showed a tenant another's data
	failures  map[string]int    // requests not accepted, by status or "no answer"
	ok        atomic.Int64
}

// TestChaos is the short version of `make chaos`: two `api serve` processes under load
// while toxiproxy (never the shared servers) cuts Redis, cuts PostgreSQL, slows each, and
// the instances are restarted, one after SIGTERM and one after SIGKILL. Then an audit: no
// accepted write lost, no usage event counted twice, no payment key with two
// PaymentIntents, no tenant served another's data, every outbox event published, and the
// service answering again within 5 s of each fault's end.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs for about half a minute")
	}
	// CHAOS_CALM is the load between faults: short in make test, longer in make chaos.
	calm := 1500 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("CHAOS_CALM")); err == nil && d > 0 {
		calm = d
	}
	fake := stripetest.NewFake(t)
	pg := newChaosProxy(t, "127.0.0.1:5432")
	rd := newChaosProxy(t, "127.0.0.1:6379")

	// An instance in this process, straight to the servers, signs tenants up, mints their
	// tokens and checks answers against openapi.yaml; the load goes to the two processes,
	// which reach PostgreSQL and Redis through the proxies.
	local := servertest.New(t)
	dbURL, err := url.Parse(pgtest.OwnerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	dbURL.Host = pg.Listen
	var procs [2]*service
	for i := range procs {
		procs[i] = startService(t, map[string]string{
			"HTTP_ADDR":                  proctest.FreeAddr(t),
			"DATABASE_URL":               dbURL.String(),
			"DATABASE_MAX_CONNS":         "8",
			"REDIS_URL":                  "redis://" + rd.Listen + "/0",
			"REDIS_KEY_PREFIX":           local.Config.RedisKeyPrefix,
			"STRIPE_SECRET_KEY":          "sk_test_123",
			"STRIPE_API_URL":             fake.URL,
			"STRIPE_WEBHOOK_SECRET":      "whsec_chaos",
			"AUTH_RATE_LIMIT_PER_MINUTE": "100000",
			"SHUTDOWN_DRAIN_DELAY":       "200ms",
			"SHUTDOWN_TIMEOUT":           "5s",
			"LOG_LEVEL":                  "error",
		})
	}
	servers := []*servertest.Server{local.At(procs[0].url), local.At(procs[1].url)}
	all := []*service{procs[0], procs[1]}

	op := local.PlatformToken(t)
	local.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/meters/chaos_calls", Token: op,
		Body: map[string]any{"event_type": "chaos.call", "aggregation": "count"}})
	var tenants []servertest.Tenant
	for i := range 4 {
		ten := local.Signup(t, fmt.Sprint("chaos-", i))
		local.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + ten.ID, Token: op, Body: map[string]string{"plan": "enterprise"}})
		tenants = append(tenants, ten)
	}

	ledger := &chaosLedger{projects: map[string]string{}, events: map[string]string{}, failures: map[string]int{}}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				chaosStep(t, rng, servers[rng.IntN(2)], tenants[rng.IntN(len(tenants))], ledger, &seq)
			}
		}()
	}

	// The faults, each about a second long, and the time from each one's end until both
	// instances answer again.
	probe := func() bool {
		for _, s := range servers {
			res, err := s.TryDo(servertest.Request{Method: "GET", Path: "/v1/projects", Token: s.TokenFor(t, tenants[0])})
			if err != nil || res.Status != 200 {
				return false
			}
		}
		return true
	}
	cut := func(p *toxiproxy.Proxy) func() func() {
		return func() func() {
			p.Stop()
			return func() {
				if err := p.Start(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	slow := func(p *toxiproxy.Proxy) func() func() {
		return func() func() {
			toxic := `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":300,"jitter":100}}`
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := p.Toxics.RemoveToxic(context.Background(), "slow"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	exits := map[string]string{}
	restart := func(i int, sig syscall.Signal) func() func() {
		return func() func() {
			old := procs[i]
			if err := old.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-old.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("api serve did not exit within 30s of %v", sig)
			}
			exits[sig.String()] = old.cmd.ProcessState.String()
			return func() { procs[i] = startService(t, old.env); all = append(all, procs[i]) }
		}
	}
	recoveries := map[string]time.Duration{}
	faults := []struct {
		name   string
		inject func() (end func())
	}{
		{"redis cut", cut(rd)},
		{"postgres cut", cut(pg)},
		{"redis slow (300±100 ms)", slow(rd)},
		{"postgres slow (300±100 ms)", slow(pg)},
		{"restart after SIGTERM", restart(0, syscall.SIGTERM)},
		{"restart after SIGKILL", restart(1, syscall.SIGKILL)},
	}
	for _, fault := range faults {
		time.Sleep(calm)
		end := fault.inject()
		time.Sleep(time.Second)
		ended := time.Now()
		end()
		for !probe() {
			if time.Since(ended) > 30*time.Second {
				t.Fatalf("%s: the service did not recover", fault.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		recoveries[fault.name] = time.Since(ended)
		t.Logf("chaos: %s: back in %v", fault.name, recoveries[fault.name].Round(time.Millisecond))
	}
	time.Sleep(calm)
	stopLoad()
	wg.Wait()
	if os.Getenv("CHAOS_LOGS") != "" {
		for _, p := range all {
			t.Logf("LOGS %s", p.output.String())
		}
	}
	t.Logf("chaos: %d requests answered 2xx; the others, by route and answer: %v", ledger.ok.Load(), ledger.failures)

	// The audit, printed as a table whatever it finds.
	owner := pgtest.Owner(t)
	bg := context.Background()
	audit := &chaosAudit{t: t}
	defer audit.print()
	audit.check("SIGTERM: a clean exit", exits["terminated"] == "exit status 0", exits["terminated"])
	internal := 0
	for why, n := range ledger.failures {
		if strings.Contains(why, ": 500 ") {
			internal += n
		}
	}
	audit.check("faults answer 503 or 429, never 500", internal == 0, fmt.Sprint(internal, " answers 500"))
	audit.check("no tenant served another's data", len(ledger.crossings) == 0, fmt.Sprint(len(ledger.crossings), " crossings"))
	lost := 0
	for id, tenantID := range ledger.projects {
		var n int
		if err := owner.QueryRow(bg, "SELECT count(*) FROM projects WHERE id = $1 AND tenant_id = $2", id, tenantID).Scan(&n); err != nil || n != 1 {
			lost++
		}
	}
	audit.check("every 2xx project is stored", lost == 0, fmt.Sprintf("%d of %d lost", lost, len(ledger.projects)))
	lost = 0
	for id, tenantID := range ledger.events {
		var n int
		if err := owner.QueryRow(bg, "SELECT count(*) FROM usage_events WHERE id = $1 AND tenant_id = $2", id, tenantID).Scan(&n); err != nil || n != 1 {
			lost++
		}
	}
	audit.check("every accepted usage event is stored once", lost == 0, fmt.Sprintf("%d of %d wrong", lost, len(ledger.events)))
	// Each batch writes its events and their rollups in one transaction: the two must agree
	// exactly, both ways, whatever crashed.
	var diff, rolled int
	err = owner.QueryRow(bg, `
		WITH rolled AS (SELECT tenant_id, bucket_start, value FROM usage_rollups WHERE meter_key = 'chaos_calls'),
		     raw AS (SELECT tenant_id, date_bin('15 minutes', time, 'epoch'), count(*) FROM usage_events WHERE type = 'chaos.call' GROUP BY 1, 2)
		SELECT (SELECT count(*) FROM ((TABLE rolled EXCEPT TABLE raw) UNION ALL (TABLE raw EXCEPT TABLE rolled)) d),
		       (SELECT coalesce(sum(value), 0) FROM rolled)`).Scan(&diff, &rolled)
	audit.check("no usage counted twice (rollups = raw events)", err == nil && diff == 0 && rolled >= len(ledger.events),
		fmt.Sprintf("%d rows differ; %d events rolled up, %d accepted (err %v)", diff, rolled, len(ledger.events), err))
	perKey := map[string]int{}
	for _, pi := range fake.PaymentIntents() {
		perKey[pi.IdempotencyKey]++
	}
	doubled := 0
	for _, n := range perKey {
		if n > 1 {
			doubled++
		}
	}
	audit.check("no payment key with two PaymentIntents", doubled == 0, fmt.Sprintf("%d of %d keys", doubled, len(perKey)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left int
		if err := owner.QueryRow(bg, "SELECT count(*) FROM outbox WHERE published_at IS NULL").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 || time.Now().After(deadline) {
			audit.check("every outbox event published", left == 0, fmt.Sprint(left, " unpublished"))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, d := range recoveries {
		audit.check("back to normal after "+name, d < 5*time.Second, "in "+d.Round(time.Millisecond).String())
	}
	if ledger.ok.Load() == 0 {
		t.Fatal("no request succeeded: the load never ran")
	}
}

// chaosStep sends one request of the mix and records what was accepted.
func chaosStep(t *testing.T, rng *rand.Rand, s *servertest.Server, ten servertest.Tenant, l *chaosLedger, seq *atomic.Int64) {
	tok := s.TokenFor(t, ten)
	var req servertest.Request
	kind := rng.IntN(12)
	switch {
	case kind >= 10:
		req = servertest.Request{Method: "POST", Path: "/ofrep/v1/evaluate/flags", Token: tok, Body: map[string]any{
			"context": map[string]any{"targetingKey": fmt.Sprint("user-", rng.IntN(100))},
		}}
	case kind < 4:
		req = servertest.Request{Method: "POST", Path: "/v1/projects", Token: tok, Body: map[string]string{"name": "chaos"}}
	case kind < 7:
		req = servertest.Request{Method: "GET", Path: "/v1/projects?limit=20", Token: tok}
	case kind < 9:
		n := seq.Add(1)
		req = servertest.Request{Method: "POST", Path: "/v1/usage/events", Token: tok, Body: []map[string]any{
			{"specversion": "1.0", "id": fmt.Sprint("c-", n), "source": "chaos", "type": "chaos.call", "data": map[string]any{}},
		}}
	case kind == 9:
		req = servertest.Request{Method: "POST", Path: "/v1/payments", Token: tok, Body: map[string]any{"amount": 1000, "currency": "usd"},
			Header: map[string]string{"Idempotency-Key": fmt.Sprint("pay-", seq.Add(1)%20)}}
	}
	res, err := s.TryDo(req)
	if err != nil || res.Status >= 300 {
		why := "no answer"
		if err == nil {
			why = fmt.Sprint(res.Status, " ", problemCode(res.Body))
		}
		l.mu.Lock()
		l.failures[req.Method+" "+strings.SplitN(req.Path, "?", 2)[0]+": "+why]++
		l.mu.Unlock()
		return
	}
	l.ok.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case req.Method == "POST" && req.Path == "/v1/projects":
		var p struct{ ID string }
		res.Decode(t, &p)
		l.projects[p.ID] = ten.ID
	case req.Path == "/v1/usage/events":
		l.events[req.Body.([]map[string]any)[0]["id"].(string)] = ten.ID
	case req.Method == "GET":
		var list struct{ Data []struct{ ID string } }
		res.Decode(t, &list)
		for _, p := range list.Data {
			if owner, ok := l.projects[p.ID]; ok && owner != ten.ID {
				l.crossings = append(l.crossings, p.ID)
			}
		}
	}
}

// problemCode answers the code of a problem+json body, or "" for any other.
func problemCode(body []byte) string {
	var p struct{ Code string }
	json.Unmarshal(body, &p)
	return p.Code
}

// chaosAudit collects the audit's findings and prints them as a table.
type chaosAudit struct {
	t    *testing.T
	rows [][3]string
}

// check records a finding; a failed one fails the test.
func (a *chaosAudit) check(what string, ok bool, detail string) {
	verdict := "ok"
	if !ok {
		verdict = "VIOLATED"
		a.t.Errorf("chaos audit: %s: %s", what, detail)
	}
	a.rows = append(a.rows, [3]string{what, verdict, detail})
}

func (a *chaosAudit) print() {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tVERDICT\tDETAIL")
	for _, r := range a.rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r[0], r[1], r[2])
	}
	w.Flush()
	a.t.Logf("chaos audit:\n%s", b.String())
}
