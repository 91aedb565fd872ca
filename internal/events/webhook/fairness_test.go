package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/events/webhook"
)

// The case: a tenant with 50 endpoints whose receivers take 10 s each (past the
// default WEBHOOK_MAX_ENDPOINTS of 20, as an operator may allow), each sent 2 events: 100
// deliveries that take slowFor each.
const (
	slowEndpoints = 50
	slowEvents    = 2
	slowFor       = 10 * time.Second
)

// newNoisy gives a new tenant slowEndpoints endpoints on receivers that take slowFor to
// answer (or until the test ends), sends them slowEvents events, and starts the deliverer;
// it answers once the deliverer is busy with them.
type noisy struct {
	f       *fixture
	started atomic.Int64 // requests the slow receivers took
}

func newNoisy(t testing.TB, f *fixture) *noisy {
	t.Helper()
	ctx := context.Background()
	n := &noisy{f: f}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.started.Add(1)
		select {
		case <-time.After(slowFor):
		case <-release:
		}
	}))
	// The attempts take slowFor: the deliverer's client must wait for them.
	f.deliverer.Client = webhook.NewClient(true, 3*slowFor)
	tenant := f.newTenant()
	f.endpoints.Max = slowEndpoints
	for range slowEndpoints {
		if _, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: slow.URL + "/slow", EventTypes: []string{"project.created"}}); err != nil {
			t.Fatal(err)
		}
	}
	for range slowEvents {
		f.fanOut(tenant, "project.created", map[string]string{"noisy": "yes"})
	}

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { f.deliverer.Run(runCtx) })
	t.Cleanup(func() {
		close(release)
		cancel()
		wg.Wait()
		slow.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for n.started.Load() < 4 { // the deliverer is busy with the noisy tenant
		if time.Now().After(deadline) {
			t.Fatal("the deliverer did not start sending the noisy tenant's deliveries")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// quiet is another tenant with one endpoint on a receiver that notes when each request came.
type quiet struct {
	f      *fixture
	tenant uuid.UUID
	mu     sync.Mutex
	got    []time.Time
}

func newQuiet(t testing.TB, f *fixture) *quiet {
	t.Helper()
	q := &quiet{f: f, tenant: f.newTenant()}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q.mu.Lock()
		q.got = append(q.got, time.Now())
		q.mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	if _, err := f.endpoints.Create(context.Background(), q.tenant, webhook.EndpointInput{URL: rcv.URL, EventTypes: []string{"project.created"}}); err != nil {
		t.Fatal(err)
	}
	return q
}

// delay commits an event of the quiet tenant together with its fan-out (fanOut) and answers
// how long after the commit its delivery reached the receiver, waiting at most a minute.
func (q *quiet) delay(t testing.TB) time.Duration {
	t.Helper()
	q.mu.Lock()
	before := len(q.got)
	q.mu.Unlock()
	q.f.fanOut(q.tenant, "project.created", map[string]string{"quiet": "yes"})
	committed := time.Now()
	deadline := committed.Add(60 * time.Second)
	for {
		q.mu.Lock()
		if len(q.got) > before {
			at := q.got[before]
			q.mu.Unlock()
			return at.Sub(committed)
		}
		q.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the quiet tenant's delivery did not arrive within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A tenant whose endpoints all take 10 s to answer costs only itself: another tenant's
// delivery leaves within about a second of the commit of its event and fan-out, while the
// noisy tenant's are still in flight. (The bound is generous, 5 s; a deliverer that waits
// for a whole batch makes it wait for the slow receivers, 10 s or more.)
func TestSlowTenantDoesNotDelayOthers(t *testing.T) {
	f := newFixture(t, true)
	newNoisy(t, f)
	q := newQuiet(t, f)
	if d := q.delay(t); d > 5*time.Second {
		t.Fatalf("the quiet tenant's delivery left %s after its commit, behind the noisy tenant's slow receivers", d)
	}
}

// BenchmarkFairness reports how long after its commit (with its fan-out, fanOut) a quiet
// tenant's event reaches its
// receiver while a noisy tenant keeps 50 endpoints that take 10 s each busy (the issue's
// target: under a second from the commit).
func BenchmarkFairness(b *testing.B) {
	f := newFixture(b, true)
	newNoisy(b, f)
	q := newQuiet(b, f)
	var delays []time.Duration
	for b.Loop() {
		delays = append(delays, q.delay(b))
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Milliseconds()), "p50-delay-ms")
	b.ReportMetric(float64(delays[len(delays)-1].Milliseconds()), "max-delay-ms")
}

// Deliveries to one endpoint go one at a time and in the order of their events, even with
// two deliverers (two replicas) running side by side.
func TestDeliveriesToOneEndpointInOrder(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	tenant := f.newTenant()
	var (
		mu                sync.Mutex
		order             []string
		inFlight, maxSeen int
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.Header.Get("webhook-id"))
		inFlight++
		maxSeen = max(maxSeen, inFlight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	if _, err := f.endpoints.Create(ctx, tenant, webhook.EndpointInput{URL: rcv.URL, EventTypes: []string{"project.created"}}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 12 {
		want = append(want, f.fanOut(tenant, "project.created", map[string]int{"n": i}).String())
	}

	other := *f.deliverer // a second replica
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { f.deliverer.Run(runCtx) })
	wg.Go(func() { other.Run(runCtx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries arrived within 30 s", n, len(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if maxSeen != 1 {
		t.Errorf("%d deliveries to the endpoint were in flight at once, want 1", maxSeen)
	}
	if !slices.Equal(order, want) {
		t.Errorf("deliveries arrived in the order %v, want the events' %v", order, want)
	}
}
