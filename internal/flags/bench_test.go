package flags

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// benchSnapshot holds 500 flags, one of them ("target") with 1,000 per-tenant overrides, a
// plan rule and a 30% split: the flag a busy service reads on every request.
func benchSnapshot(b *testing.B) (s *Snapshot, overridden, others []uuid.UUID) {
	b.Helper()
	flags := make([]Flag, 0, 500)
	for i := range 499 {
		flags = append(flags, boolFlag(fmt.Sprintf("flag-%03d", i),
			Rule{Conditions: []Condition{planIs("pro"), {Attribute: "country", Operator: OpIn, Values: []any{"fr", "de"}}}, Variant: "on"},
			percent(i%100)))
	}
	flags = append(flags, boolFlag("target",
		Rule{Conditions: []Condition{planIs("enterprise", "business")}, Variant: "on"},
		percent(30)))
	overridden, others = randomIDs(1000), sequentialIDs(1024)
	overrides := make([]Override, len(overridden))
	for i, id := range overridden {
		overrides[i] = Override{FlagKey: "target", TenantID: id, Variant: "on"}
	}
	return mustSnapshot(b, 1, flags, overrides...), overridden, others
}

// BenchmarkEvaluate evaluates "target" by each of its paths, in parallel: with -cpu 1,2 the
// time per operation should halve, as evaluation shares nothing writable.
func BenchmarkEvaluate(b *testing.B) {
	s, overridden, others := benchSnapshot(b)
	paths := []struct {
		name   string
		target func(i int) Target
		reason Reason
	}{
		{"override", func(i int) Target { return Target{Tenant: Tenant{ID: overridden[i%len(overridden)], Plan: "free"}} }, ReasonTargetingMatch},
		{"plan-rule", func(i int) Target { return Target{Tenant: Tenant{ID: others[i%len(others)], Plan: "business"}} }, ReasonTargetingMatch},
		{"split", func(i int) Target { return Target{Tenant: Tenant{ID: others[i%len(others)], Plan: "free"}} }, ReasonSplit},
	}
	for _, p := range paths {
		targets := make([]Target, 1024)
		for i := range targets {
			targets[i] = p.target(i)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i, wrong := 0, 0
				for pb.Next() {
					if s.Evaluate("target", TypeBoolean, targets[i&1023]).Reason != p.reason {
						wrong++
					}
					i++
				}
				if wrong > 0 {
					b.Errorf("%d evaluations answered another reason than %s", wrong, p.reason)
				}
			})
		})
	}
}

// BenchmarkClientBool is the Go API as a handler calls it: tenant from the context, snapshot
// pinned for the request.
func BenchmarkClientBool(b *testing.B) {
	s, _, others := benchSnapshot(b)
	c := &Client{Tenant: tenantFromContext}
	c.set(s)
	ctx := c.Pin(context.WithValue(context.Background(), tenantCtxKey{}, Tenant{ID: others[7], Plan: "free"}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Bool(ctx, "target", false)
		}
	})
}

// BenchmarkOFREP measures a single OFREP evaluation over HTTP on loopback, through the
// routing and middleware of the service (with stand-ins for authentication and the tenant
// directory), and reports the latency's median and 99th percentile.
func BenchmarkOFREP(b *testing.B) {
	s, _, others := benchSnapshot(b)
	client := &Client{Tenant: tenantFromContext}
	client.set(s)
	dir := &fakeDirectory{}
	dir.add(Tenant{ID: others[3], Plan: "free"})
	srv := httptest.NewServer(testRouter(&Handler{Client: client}, &AdminHandler{}, dir))
	defer srv.Close()
	hc := srv.Client()
	url := srv.URL + "/ofrep/v1/evaluate/flags/target"
	const body = `{"context":{"targetingKey":"user-42","country":"fr"}}`
	do := func() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tenant:"+others[3].String())
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var ev Evaluation
		if err := json.NewDecoder(res.Body).Decode(&ev); err != nil || res.StatusCode != http.StatusOK || ev.Reason != ReasonSplit {
			b.Fatalf("%d %+v %v", res.StatusCode, ev, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	do() // a warm connection

	latencies := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		do()
		latencies = append(latencies, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
}
