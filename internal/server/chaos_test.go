package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/saasbase/saasbase/internal/billing/stripetest"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
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
	ok, fail  atomic.Int64
}

// TestChaos is the short version of `make chaos`: two API instances under load while Redis
// and then PostgreSQL are cut (toxiproxy, never the shared servers), then an audit: no
// accepted write lost, no usage event counted twice, no payment key with two
// PaymentIntents, no tenant served another's data, every outbox event published, and the
// service answering again after each fault.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs for about 15 seconds")
	}
	// CHAOS_CALM is the load between faults: short in make test, longer in make chaos.
	calm := 1500 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("CHAOS_CALM")); err == nil && d > 0 {
		calm = d
	}
	fake := stripetest.NewFake(t)
	pg := newChaosProxy(t, "127.0.0.1:5432")
	rd := newChaosProxy(t, "127.0.0.1:6379")
	viaProxies := func(c *config.Config) {
		u, _ := url.Parse(pgtest.OwnerURL(t))
		u.Host = pg.Listen
		c.DatabaseURL = u.String()
		c.RedisURL = "redis://" + rd.Listen + "/0"
		c.RateLimitEnabled = true
		c.StripeSecretKey, c.StripeAPIURL, c.StripeWebhookSecret = "sk_test_123", fake.URL, "whsec_chaos"
	}
	var servers []*servertest.Server
	for range 2 {
		s := servertest.New(t, viaProxies)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.App.RunBackground(ctx) }()
		t.Cleanup(func() { stop(); <-done })
		servers = append(servers, s)
	}
	op := servers[0].PlatformToken(t)
	servers[0].Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/meters/chaos_calls", Token: op,
		Body: map[string]any{"event_type": "chaos.call", "aggregation": "count"}})
	var tenants []servertest.Tenant
	for i := range 4 {
		ten := servers[0].Signup(t, fmt.Sprint("chaos-", i))
		servers[0].Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + ten.ID, Token: op, Body: map[string]string{"plan": "enterprise"}})
		tenants = append(tenants, ten)
	}

	ledger := &chaosLedger{projects: map[string]string{}, events: map[string]string{}}
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

	// The faults, each a second long, and the time until both instances answer again.
	probe := func() bool {
		for _, s := range servers {
			res, err := s.TryDo(servertest.Request{Method: "GET", Path: "/v1/projects", Token: s.TokenFor(t, tenants[0])})
			if err != nil || res.Status != 200 {
				return false
			}
		}
		return true
	}
	recoveries := map[string]time.Duration{}
	for _, fault := range []struct {
		name  string
		proxy *toxiproxy.Proxy
	}{{"redis cut", rd}, {"postgres cut", pg}} {
		time.Sleep(calm)
		fault.proxy.Stop()
		time.Sleep(time.Second)
		if err := fault.proxy.Start(); err != nil {
			t.Fatal(err)
		}
		ended := time.Now()
		for !probe() {
			if time.Since(ended) > 30*time.Second {
				t.Fatalf("%s: the service did not recover", fault.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		recoveries[fault.name] = time.Since(ended)
	}
	time.Sleep(calm)
	stopLoad()
	wg.Wait()
	t.Logf("chaos: %d requests answered 2xx, %d not; recovery after the fault ended: %v", ledger.ok.Load(), ledger.fail.Load(), recoveries)

	// The audit, printed as a table whatever it finds.
	owner := pgtest.Owner(t)
	bg := context.Background()
	audit := &chaosAudit{t: t}
	defer audit.print()
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
	var diff int
	err := owner.QueryRow(bg, `
		SELECT count(*) FROM (
		  (SELECT tenant_id, bucket_start, value FROM usage_rollups WHERE meter_key = 'chaos_calls')
		  EXCEPT
		  (SELECT tenant_id, date_bin('15 minutes', time, 'epoch'), count(*) FROM usage_events WHERE type = 'chaos.call' GROUP BY 1, 2)
		) d`).Scan(&diff)
	audit.check("no usage counted twice (rollups = raw events)", err == nil && diff == 0, fmt.Sprintf("%d rows differ", diff))
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
	kind := rng.IntN(10)
	switch {
	case kind < 4:
		req = servertest.Request{Method: "POST", Path: "/v1/projects", Token: tok, Body: map[string]string{"name": "chaos"}}
	case kind < 7:
		req = servertest.Request{Method: "GET", Path: "/v1/projects?limit=20", Token: tok}
	case kind < 9:
		n := seq.Add(1)
		req = servertest.Request{Method: "POST", Path: "/v1/usage/events", Token: tok, Body: []map[string]any{
			{"specversion": "1.0", "id": fmt.Sprint("c-", n), "source": "chaos", "type": "chaos.call", "data": map[string]any{}},
		}}
	default:
		req = servertest.Request{Method: "POST", Path: "/v1/payments", Token: tok, Body: map[string]any{"amount": 1000, "currency": "usd"},
			Header: map[string]string{"Idempotency-Key": fmt.Sprint("pay-", seq.Add(1)%20)}}
	}
	res, err := s.TryDo(req)
	if err != nil || res.Status >= 300 {
		l.fail.Add(1)
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
