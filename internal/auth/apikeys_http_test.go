package auth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestAPIKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	s := servertest.New(t)
	a := s.Signup(t, "keys")

	k := s.CreateAPIKey(t, a.Token, "ci", "member")
	key := *k.Key
	if !strings.HasPrefix(key, "sk_test_") {
		t.Fatalf("key %q, want the sk_test_ prefix outside production", key)
	}
	id, secret, ok := auth.ParseAPIKey(key)
	if !ok || id.String() != k.ID {
		t.Fatalf("key %q does not carry its id %s", key, k.ID)
	}
	secretHex := hex.EncodeToString(secret)

	// The list never shows the secret, before or after the key is used.
	listKeys := func() []map[string]any {
		t.Helper()
		res := s.Get(t, a.Token, "/v1/api-keys")
		res.Want(t, http.StatusOK, "")
		if bytes.Contains(res.Body, []byte(secretHex)) {
			t.Fatalf("GET /v1/api-keys shows the secret: %s", res.Body)
		}
		var list struct{ Data []map[string]any }
		res.Decode(t, &list)
		for _, item := range list.Data {
			if _, ok := item["key"]; ok {
				t.Fatalf("GET /v1/api-keys returns key: %s", res.Body)
			}
		}
		return list.Data
	}
	if l := listKeys(); len(l) != 1 || l[0]["id"] != k.ID {
		t.Fatalf("GET /v1/api-keys = %v, want the one key", l)
	}

	me := s.Me(t, key)
	if me.Kind != "api_key" || me.ID != k.ID || me.Name != "ci" || me.Role != "member" {
		t.Fatalf("/v1/me with the key = %+v", me)
	}
	listKeys()

	// The database holds a hash only: neither the key nor its secret, in any encoding, in
	// any column of api_keys or in the event log.
	conn := pgtest.Owner(t)
	var hash []byte
	if err := conn.QueryRow(ctx, "SELECT secret_hash FROM api_keys WHERE id = $1", k.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if len(hash) == 0 || bytes.Contains(hash, secret) || bytes.Contains(hash, []byte(secretHex)) {
		t.Fatalf("secret_hash %x holds the secret", hash)
	}
	for _, table := range []string{"api_keys", "outbox"} {
		var all string
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM %s t", table)).Scan(&all); err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{key, secretHex, base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret)} {
			if strings.Contains(all, leak) {
				t.Fatalf("table %s holds the API key's secret (%q)", table, leak)
			}
		}
	}

	// Revoked: refused from then on, and no longer listed.
	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/api-keys/" + k.ID, Token: a.Token}).Want(t, http.StatusNoContent, "")
	s.Get(t, key, "/v1/me").WantUnauthorized(t)
	s.Get(t, key, "/v1/projects").WantUnauthorized(t)
	if l := listKeys(); len(l) != 0 {
		t.Fatalf("a revoked key is listed: %v", l)
	}
	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/api-keys/" + k.ID, Token: a.Token}).Want(t, http.StatusNotFound, "not_found")

	// A key with one changed character of its secret, or with the live prefix, is refused.
	k2 := *s.CreateAPIKey(t, a.Token, "second", "member").Key
	s.Me(t, k2)
	flip := byte('0')
	if k2[len(k2)-1] == '0' {
		flip = '1'
	}
	s.Get(t, k2[:len(k2)-1]+string(flip), "/v1/me").WantUnauthorized(t)
	s.Get(t, "sk_live_"+strings.TrimPrefix(k2, "sk_test_"), "/v1/me").WantUnauthorized(t)
}

func TestAPIKeyCannotReachAnotherTenant(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "keys-a")
	b := s.Signup(t, "keys-b")
	aKey := *s.CreateAPIKey(t, a.Token, "a-admin", "admin").Key
	bKey := s.CreateAPIKey(t, b.Token, "b-admin", "admin")
	bProject := s.Create(t, b.Token, "/v1/projects", map[string]string{"name": "b-secret"})

	for _, req := range []servertest.Request{
		{Method: "GET", Path: "/v1/projects/" + bProject},
		{Method: "PATCH", Path: "/v1/projects/" + bProject, Body: map[string]string{"name": "stolen"}},
		{Method: "DELETE", Path: "/v1/projects/" + bProject},
		{Method: "GET", Path: "/v1/users/" + b.OwnerID},
		{Method: "PATCH", Path: "/v1/users/" + b.OwnerID, Body: map[string]string{"role": "member"}},
		{Method: "DELETE", Path: "/v1/users/" + b.OwnerID},
		{Method: "DELETE", Path: "/v1/api-keys/" + bKey.ID},
	} {
		req.Token = aKey
		res := s.Do(t, req)
		if res.Status != http.StatusNotFound || res.Problem(t).Code != "not_found" {
			t.Errorf("%s %s with tenant A's key: %d %s, want 404 not_found", req.Method, req.Path, res.Status, res.Body)
		}
	}
	for _, path := range []string{"/v1/projects", "/v1/users", "/v1/api-keys", "/v1/events", "/v1/tenant", "/v1/me"} {
		res := s.Get(t, aKey, path+"?limit=200")
		res.Want(t, http.StatusOK, "")
		for _, leak := range []string{b.ID, b.OwnerID, bProject, bKey.ID, b.Slug} {
			if bytes.Contains(res.Body, []byte(leak)) {
				t.Errorf("GET %s with tenant A's key shows tenant B's %s: %s", path, leak, res.Body)
			}
		}
	}

	// B's things are untouched.
	res := s.Get(t, b.Token, "/v1/projects/"+bProject)
	res.Want(t, http.StatusOK, "")
	var p struct{ Name string }
	res.Decode(t, &p)
	if p.Name != "b-secret" {
		t.Fatalf("tenant B's project is now %q", p.Name)
	}
	s.Me(t, *bKey.Key)
	s.Me(t, b.Token)
}

func TestAPIKeyRoles(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "keyroles")
	_, member := s.LoginNewUser(t, a, "member")
	_, admin := s.LoginNewUser(t, a, "admin")

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: member.AccessToken, Body: map[string]string{"name": "m", "role": "member"}})
	res.Want(t, http.StatusForbidden, "forbidden")

	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: admin.AccessToken, Body: map[string]string{"name": "o", "role": "owner"}})
	res.Want(t, http.StatusForbidden, "forbidden")

	adminKey := s.CreateAPIKey(t, admin.AccessToken, "a", "admin")
	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: *adminKey.Key, Body: map[string]string{"name": "o", "role": "owner"}})
	res.Want(t, http.StatusForbidden, "forbidden")

	memberKey := s.CreateAPIKey(t, a.Token, "m", "member")
	s.Get(t, *memberKey.Key, "/v1/api-keys").Want(t, http.StatusForbidden, "forbidden")
	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: *memberKey.Key, Body: map[string]string{"name": "x", "role": "member"}})
	res.Want(t, http.StatusForbidden, "forbidden")

	s.CreateAPIKey(t, a.Token, "owner-made", "owner")
}

// TestAPIKeyRevocationRespectsRank: revoking a key acts on a principal of the key's role, so
// it follows the rule of every such action: an admin, by token or by key, may not revoke an
// owner's key (403 forbidden, as for deleting an owner), and the key keeps working; keys of
// the admin's rank or below are the admin's to revoke, and the owner's are the owner's.
func TestAPIKeyRevocationRespectsRank(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "revoke-rank")
	_, admin := s.LoginNewUser(t, a, "admin")
	ownerKey := s.CreateAPIKey(t, a.Token, "owner-key", "owner")
	adminKey := s.CreateAPIKey(t, a.Token, "admin-key", "admin")
	otherAdminKey := s.CreateAPIKey(t, a.Token, "other-admin-key", "admin")
	memberKey := s.CreateAPIKey(t, a.Token, "member-key", "member")
	revoke := func(token, id string) *servertest.Response {
		t.Helper()
		return s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/api-keys/" + id, Token: token})
	}

	for _, token := range []string{admin.AccessToken, *adminKey.Key} {
		revoke(token, ownerKey.ID).Want(t, http.StatusForbidden, "forbidden")
	}
	if me := s.Me(t, *ownerKey.Key); me.Role != "owner" {
		t.Fatalf("the owner key after the refused revocations: /v1/me = %+v", me)
	}

	revoke(admin.AccessToken, memberKey.ID).Want(t, http.StatusNoContent, "")
	revoke(*adminKey.Key, otherAdminKey.ID).Want(t, http.StatusNoContent, "")
	revoke(a.Token, ownerKey.ID).Want(t, http.StatusNoContent, "")
	for _, k := range []servertest.APIKey{ownerKey, otherAdminKey, memberKey} {
		s.Get(t, *k.Key, "/v1/me").WantUnauthorized(t)
	}
}

// TestAPIKeyRateLimitMustSuitTheLimiter: a key's rate limit is checked at creation by the
// limiter's own rule, so a limit the limiter cannot hold is a 400 naming the field and
// stores no key, instead of a key whose every request fails.
func TestAPIKeyRateLimitMustSuitTheLimiter(t *testing.T) {
	s := servertest.New(t, func(c *config.Config) { c.RateLimitEnabled = true })
	a := s.Signup(t, "key-limits")
	create := func(rl map[string]any) *servertest.Response {
		t.Helper()
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: a.Token,
			Body: map[string]any{"name": "limited", "role": "member", "rate_limit": rl}})
	}

	for _, c := range []struct {
		name  string
		limit map[string]any
		field string
	}{
		{"a rate too low to ever refill", map[string]any{"requests_per_second": 1e-300, "burst": 1}, "rate_limit.requests_per_second"},
		{"a burst that takes longer than three years to refill", map[string]any{"requests_per_second": 1, "burst": 1e12}, "rate_limit.requests_per_second"},
		{"a burst beyond any rate", map[string]any{"requests_per_second": 1e300, "burst": 1e15}, "rate_limit.burst"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := create(c.limit)
			res.Want(t, http.StatusBadRequest, "validation_failed")
			if p := res.Problem(t); len(p.Errors) != 1 || p.Errors[0].Field != c.field {
				t.Fatalf("errors %+v, want one naming %s", p.Errors, c.field)
			}
		})
	}
	var list struct{ Data []any }
	s.Get(t, a.Token, "/v1/api-keys").Decode(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("refused keys were stored: %v", list.Data)
	}

	// The extremes the limiter can hold are accepted, and their keys work: a huge rate is
	// clamped to the tenant's, a slow one spends its one request.
	for _, rl := range []map[string]any{
		{"requests_per_second": 1e300, "burst": 1},
		{"requests_per_second": 1e-6, "burst": 1},
	} {
		res := create(rl)
		res.Want(t, http.StatusCreated, "")
		var k servertest.APIKey
		res.Decode(t, &k)
		s.Me(t, *k.Key)
	}
}

// TestAPIKeyWithAnUnusableStoredLimit: a key stored before its limit was checked, with a
// limit the limiter cannot hold, is limited by its tenant's budget alone rather than answered
// 500 on every request.
func TestAPIKeyWithAnUnusableStoredLimit(t *testing.T) {
	s := servertest.New(t, func(c *config.Config) { c.RateLimitEnabled = true })
	a := s.Signup(t, "key-legacy-limit")
	k := s.CreateAPIKey(t, a.Token, "legacy", "member")
	_, err := pgtest.Owner(t).Exec(context.Background(),
		`UPDATE api_keys SET rate_limit = '{"requests_per_second": 1e-300, "burst": 1}' WHERE id = $1`, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.Get(t, *k.Key, "/v1/projects").Want(t, http.StatusOK, "")
	}
}
