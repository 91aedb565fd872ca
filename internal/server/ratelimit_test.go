package server_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

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

// authBudget is a service whose per-address "auth" budget is 3 and which believes
// X-Forwarded-For from the test's loopback peer, so that each test picks its clients'
// addresses.
func authBudget(c *config.Config) {
	c.RateLimitEnabled = true
	c.AuthRatePerMinute = 3
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
}

// from is a request sent on behalf of the client at addr.
func from(addr string, req servertest.Request) servertest.Request {
	req.Header = map[string]string{"X-Forwarded-For": addr}
	return req
}

// wantAuthLimited stops the test unless res is the "auth" budget's 429.
func wantAuthLimited(t *testing.T, res *servertest.Response) {
	t.Helper()
	res.Want(t, http.StatusTooManyRequests, "rate_limited")
	if !strings.Contains(string(res.Body), `"policy":"auth"`) {
		t.Fatalf("denial %s, want the auth policy", res.Body)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q, want whole seconds, at least 1", res.Header.Get("Retry-After"))
	}
}

// Logout works without a credential, so it spends the per-address budget as signup and the
// token endpoint do: each request costs a database transaction.
func TestRevokeIsLimitedPerIP(t *testing.T) {
	s := servertest.New(t, authBudget)
	revoke := servertest.Request{Method: "POST", Path: "/v1/auth/revoke", Body: map[string]string{"refresh_token": "rt_unknown"}}
	for i := range 3 {
		if res := s.Do(t, from("203.0.113.1", revoke)); res.Status != http.StatusNoContent {
			t.Fatalf("revoke %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	wantAuthLimited(t, s.Do(t, from("203.0.113.1", revoke)))
	s.Do(t, from("203.0.113.2", revoke)).Want(t, http.StatusNoContent, "")
}

// Failed authentications spend the per-address budget on any authenticated route: a client
// guessing API keys (each guess a database lookup) or access tokens is stopped once it has
// failed as often as the budget allows. Then its API keys are refused before they are looked
// up, valid or not, since only the lookup could tell; a valid access token, known without
// the database, still passes. Successful authentications spend nothing, and other addresses
// keep their whole budget.
func TestFailedAuthenticationsSpendThePerIPBudget(t *testing.T) {
	s := servertest.New(t, authBudget)
	ten := s.Signup(t, "rl-fail") // from the loopback address, not the clients below
	key := *s.CreateAPIKey(t, ten.Token, "ci", "member").Key
	unknown := "sk_test_" + strings.ReplaceAll(uuid.NewString(), "-", "") + "_" + strings.Repeat("5e", 32) // well-formed, never issued
	projects := func(addr, credential string) *servertest.Response {
		return s.Do(t, from(addr, servertest.Request{Method: "GET", Path: "/v1/projects", Token: credential}))
	}

	const guesser = "203.0.113.10"
	for range 3 {
		projects(guesser, unknown).WantUnauthorized(t)
	}
	wantAuthLimited(t, projects(guesser, unknown))
	wantAuthLimited(t, projects(guesser, key))
	projects(guesser, ten.Token).Want(t, http.StatusOK, "")
	// The budget is the one the token endpoint spends.
	wantAuthLimited(t, s.Do(t, from(guesser, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "password", "tenant": ten.Slug, "email": ten.OwnerEmail, "password": servertest.Password}})))

	// Bad access tokens are charged too.
	const forger = "203.0.113.11"
	for range 3 {
		projects(forger, "not.a.jwt").WantUnauthorized(t)
	}
	wantAuthLimited(t, projects(forger, "not.a.jwt"))

	// Another address: its failures still answer 401, and its valid key works, more often
	// than the budget would allow if successes were charged.
	const other = "203.0.113.12"
	projects(other, unknown).WantUnauthorized(t)
	for i := range 5 {
		if res := projects(other, key); res.Status != http.StatusOK {
			t.Fatalf("valid key from another address, request %d: %d %s", i+1, res.Status, res.Body)
		}
	}
}
