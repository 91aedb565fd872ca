package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func rateLimited(c *config.Config) {
	c.RateLimitEnabled = true
	c.AuthRatePerMinute = 1000
}

// Test 7 of the rate limiter, over HTTP: tenant A exhausting its budget does not deny tenant
// B. Every answer carries the draft RateLimit headers; a denial is a 429 rate_limited with
// Retry-After and the policy that denied.
func TestTenantBudgetsAreIndependent(t *testing.T) {
	s := servertest.New(t, rateLimited)
	a, b := s.Signup(t, "rl-a"), s.Signup(t, "rl-b")
	op := s.PlatformToken(t)
	for _, ten := range []servertest.Tenant{a, b} {
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + ten.ID, Token: op,
			Body: map[string]any{"rate_limit": map[string]any{"requests_per_second": 1, "burst": 5}}})
		if res.Status != 200 {
			t.Fatalf("override: %d %s", res.Status, res.Body)
		}
	}
	get := func(ten servertest.Tenant) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects", Token: ten.Token})
	}
	first := get(a)
	if first.Status != 200 || !strings.Contains(first.Header.Get("RateLimit-Policy"), `"tenant";q=5;w=5`) ||
		!strings.Contains(first.Header.Get("RateLimit"), `"tenant";r=4`) {
		t.Fatalf("first answer: %d, RateLimit-Policy %q, RateLimit %q", first.Status, first.Header.Get("RateLimit-Policy"), first.Header.Get("RateLimit"))
	}
	var denied *servertest.Response
	for range 10 {
		if res := get(a); res.Status == http.StatusTooManyRequests {
			denied = res
			break
		}
	}
	if denied == nil {
		t.Fatal("tenant A was never limited")
	}
	if p := denied.Problem(t); p.Code != "rate_limited" || !strings.Contains(string(denied.Body), `"policy":"tenant"`) {
		t.Fatalf("denial %s", denied.Body)
	}
	if ra, err := strconv.Atoi(denied.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", denied.Header.Get("Retry-After"))
	}
	for i := range 5 {
		if res := get(b); res.Status != 200 {
			t.Fatalf("tenant B request %d: %d %s, while A is limited", i, res.Status, res.Body)
		}
	}
	// Probes are never limited.
	for range 20 {
		if res := s.Do(t, servertest.Request{Method: "GET", Path: "/livez"}); res.Status != 200 {
			t.Fatalf("livez: %d", res.Status)
		}
	}
}

// Signup and the token endpoint are limited per client address.
func TestAuthRoutesAreLimitedPerIP(t *testing.T) {
	s := servertest.New(t, func(c *config.Config) {
		c.RateLimitEnabled = true
		c.AuthRatePerMinute = 3
	})
	a := s.Signup(t, "rl-ip")
	statuses := []int{}
	for range 4 {
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
			"grant_type": "password", "tenant": a.Slug, "email": a.OwnerEmail, "password": servertest.Password}})
		statuses = append(statuses, res.Status)
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 || statuses[3] != 429 {
		t.Fatalf("token statuses %v, want 200 200 429 429 (the signup spent one of 3)", statuses)
	}
}
