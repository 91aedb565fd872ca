package ratelimit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/ratelimit"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func fixed(limits ...ratelimit.Limit) ratelimit.Resolve {
	return func(*http.Request) ([]ratelimit.Limit, error) { return limits, nil }
}

// rateLimit parses `"<policy>";r=<n>;t=<n>`.
func rateLimit(t *testing.T, h http.Header) (policy string, r, reset int64) {
	t.Helper()
	v := h.Get("RateLimit")
	parts := strings.Split(v, ";")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "r=") || !strings.HasPrefix(parts[2], "t=") {
		t.Fatalf("RateLimit %q, want \"<policy>\";r=<n>;t=<n>", v)
	}
	policy, _ = strconv.Unquote(parts[0])
	r, _ = strconv.ParseInt(parts[1][2:], 10, 64)
	reset, _ = strconv.ParseInt(parts[2][2:], 10, 64)
	return policy, r, reset
}

// within1s fails unless got seconds is within a second of want.
func within1s(t *testing.T, what string, got int64, want time.Duration) {
	t.Helper()
	if d := time.Duration(got)*time.Second - want; d < -time.Second || d > time.Second {
		t.Errorf("%s = %ds, want %v ± 1s", what, got, want)
	}
}

// The headers count exactly: r is the requests left, t the seconds until the next request
// is allowed once none is, else until the bucket is full; a denial is a 429 problem naming
// the policy, with Retry-After.
func TestHeaders(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	// Three at once, then one every two seconds.
	lim := tenantLimit(0.5, 3)
	h := ratelimit.Middleware(l, fixed(lim))(ok)
	interval := 2 * time.Second

	for i := 1; i <= 3; i++ {
		w := serve(h, httptest.NewRequest("GET", "/v1/projects", nil))
		if w.Code != http.StatusNoContent {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		if got := w.Header().Get("RateLimit-Policy"); got != `"tenant";q=3;w=6` {
			t.Fatalf("RateLimit-Policy %q", got)
		}
		policy, r, reset := rateLimit(t, w.Header())
		if policy != "tenant" || r != int64(3-i) {
			t.Fatalf("request %d: policy %q r=%d, want tenant r=%d", i, policy, r, 3-i)
		}
		truth := time.Duration(i) * interval // until full
		if r == 0 {
			truth = interval // until the next request is allowed
		}
		within1s(t, "t", reset, truth)
	}

	w := serve(h, httptest.NewRequest("GET", "/v1/projects", nil))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("fourth request: %d, want 429", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var p httpx.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != 429 || p.Code != "rate_limited" || p.Policy != "tenant" {
		t.Fatalf("problem %+v, want 429 rate_limited by tenant", p)
	}
	retry, err := strconv.ParseInt(w.Header().Get("Retry-After"), 10, 64)
	if err != nil || retry < 1 {
		t.Fatalf("Retry-After %q, want whole seconds, at least 1", w.Header().Get("Retry-After"))
	}
	within1s(t, "Retry-After", retry, interval)
	policy, r, reset := rateLimit(t, w.Header())
	if policy != "tenant" || r != 0 {
		t.Fatalf("denied: policy %q r=%d", policy, r)
	}
	within1s(t, "t", reset, interval)
}

// Every policy of the request is listed; RateLimit shows the most restrictive, and a denial
// the one that denied.
func TestHeadersOfSeveralPolicies(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	tenant := tenantLimit(100, 200)
	key := ratelimit.Limit{Scope: tenant.Scope, Policy: "key", ID: uuid.NewString(), Rate: 0.1, Burst: 2}
	h := ratelimit.Middleware(l, fixed(tenant, key))(ok)

	w := serve(h, httptest.NewRequest("GET", "/", nil))
	if got := w.Header().Get("RateLimit-Policy"); got != `"tenant";q=200;w=2, "key";q=2;w=20` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
	if policy, r, _ := rateLimit(t, w.Header()); policy != "key" || r != 1 {
		t.Fatalf("RateLimit names %q r=%d, want key r=1", policy, r)
	}
	serve(h, httptest.NewRequest("GET", "/", nil))
	w = serve(h, httptest.NewRequest("GET", "/", nil))
	var p httpx.Problem
	json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != 429 || p.Policy != "key" {
		t.Fatalf("third request: %d %+v, want 429 by key", w.Code, p)
	}
	within1s(t, "Retry-After", mustAtoi(t, w.Header().Get("Retry-After")), 10*time.Second)
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A cost above the burst is a configuration error: a 500, not an endless 429.
func TestMiddlewareConfigError(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	lim := tenantLimit(1, 5)
	lim.Cost = 6
	w := serve(ratelimit.Middleware(l, fixed(lim))(ok), httptest.NewRequest("POST", "/", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("got %d, want 500", w.Code)
	}
}

// Without limits a request passes untouched.
func TestMiddlewareWithoutLimits(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	w := serve(ratelimit.Middleware(l, fixed())(ok), httptest.NewRequest("GET", "/", nil))
	if w.Code != http.StatusNoContent || w.Header().Get("RateLimit") != "" {
		t.Fatalf("got %d with %v", w.Code, w.Header())
	}
}

// The middleware holds a request's in-flight slot until its handler returns.
func TestMiddlewareReleasesAfterTheHandler(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	lim := tenantLimit(1000, 1000)
	lim.MaxConcurrent = 2
	entered, unblock := make(chan struct{}), make(chan struct{})
	h := ratelimit.Middleware(l, fixed(lim))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-unblock
	}))

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { serve(h, httptest.NewRequest("GET", "/", nil)) })
		<-entered
	}
	w := serve(h, httptest.NewRequest("GET", "/", nil))
	var p httpx.Problem
	json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != 429 || p.Policy != "tenant.concurrency" || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("third in flight: %d %+v, want 429 by tenant.concurrency", w.Code, p)
	}
	close(unblock)
	wg.Wait()
	go func() { <-entered }()
	if w := serve(h, httptest.NewRequest("GET", "/", nil)); w.Code != http.StatusOK {
		t.Fatalf("after the handlers returned: %d", w.Code)
	}
}

// Signup and token are limited per client address, believed from X-Forwarded-For only when
// the peer is a trusted proxy; one address spending its budget leaves another's whole.
func TestPerIP(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	clientIP := httpx.ClientIP{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}.Of
	h := ratelimit.PerIP(l, "auth"+uuid.NewString()[:8], 3, clientIP)(ok)
	from := func(peer, xff string) int {
		r := httptest.NewRequest("POST", "/v1/auth/token", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return serve(h, r).Code
	}
	for i := range 3 {
		if code := from("10.0.0.1:5000", "203.0.113.9"); code != http.StatusNoContent {
			t.Fatalf("request %d behind the proxy: %d", i+1, code)
		}
	}
	if code := from("10.0.0.1:5000", "203.0.113.9"); code != 429 {
		t.Fatalf("fourth request from one address: %d, want 429", code)
	}
	if code := from("10.0.0.1:5000", "203.0.113.10"); code != http.StatusNoContent {
		t.Fatalf("another address behind the proxy: %d", code)
	}
	// An untrusted peer cannot pick its address.
	for i := range 3 {
		if code := from("198.51.100.7:5000", "203.0.113.11"); code != http.StatusNoContent {
			t.Fatalf("direct request %d: %d", i+1, code)
		}
	}
	if code := from("198.51.100.7:5000", "203.0.113.12"); code != 429 {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", code)
	}
	// An IPv6 client is one /64.
	from("[2001:db8:1:2::1]:5000", "")
	from("[2001:db8:1:2::2]:5000", "")
	from("[2001:db8:1:2::3]:5000", "")
	if code := from("[2001:db8:1:2::4]:5000", ""); code != 429 {
		t.Fatalf("a fourth address in one /64: %d, want 429", code)
	}
}

// A cap on requests in flight is a policy of its own in RateLimit-Policy, counted in
// concurrent requests and with no window, and a request it denies is answered with that
// policy's RateLimit: none left, and no t, since when a slot frees is unknown.
func TestHeadersOfTheConcurrencyCap(t *testing.T) {
	l, _ := newLimiter(t, newClient(t, redisAddr), newPrefix(t), ratelimit.Options{})
	tenant := tenantLimit(1000, 1000)
	tenant.MaxConcurrent = 1
	key := ratelimit.Limit{Scope: tenant.Scope, Policy: "key", ID: uuid.NewString(), Rate: 100, Burst: 200}
	entered, unblock := make(chan struct{}), make(chan struct{})
	h := ratelimit.Middleware(l, fixed(tenant, key))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-unblock
		w.WriteHeader(http.StatusNoContent)
	}))
	wantPolicies := func(w *httptest.ResponseRecorder) {
		t.Helper()
		got := parseList(t, w.Header().Get("RateLimit-Policy"))
		want := []sfItem{
			{"tenant", map[string]any{"q": int64(1000), "w": int64(1)}},
			{"tenant.concurrency", map[string]any{"q": int64(1), "qu": "concurrent-requests"}},
			{"key", map[string]any{"q": int64(200), "w": int64(2)}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("RateLimit-Policy %q, want %+v", w.Header().Get("RateLimit-Policy"), want)
		}
	}

	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- serve(h, httptest.NewRequest("GET", "/", nil)) }()
	<-entered
	w := serve(h, httptest.NewRequest("GET", "/", nil))
	var p httpx.Problem
	json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != http.StatusTooManyRequests || p.Policy != "tenant.concurrency" {
		t.Fatalf("second in flight: %d %s, want 429 by tenant.concurrency", w.Code, w.Body)
	}
	wantPolicies(w)
	got := parseList(t, w.Header().Get("RateLimit"))
	want := []sfItem{{"tenant.concurrency", map[string]any{"r": int64(0)}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RateLimit %q, want %+v", w.Header().Get("RateLimit"), want)
	}

	close(unblock)
	w = <-first
	if w.Code != http.StatusNoContent {
		t.Fatalf("the request in flight: %d", w.Code)
	}
	wantPolicies(w)
	if got := parseList(t, w.Header().Get("RateLimit")); len(got) != 1 || got[0].name != "key" {
		t.Fatalf("admitted: RateLimit %q, want the key's, nearest denial", w.Header().Get("RateLimit"))
	}
}
