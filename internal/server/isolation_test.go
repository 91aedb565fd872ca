package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// withStripe configures payments, with a Stripe that no request of these tests reaches:
// another tenant's payment is refused before any call to it.
func withStripe(c *config.Config) {
	c.StripeSecretKey, c.StripeAPIURL = "sk_test_123", "http://127.0.0.1:1"
}

// isoTenant is a signed-up tenant with one of each resource, by collection.
type isoTenant struct {
	servertest.Tenant
	ids    map[string][]string // collection → ids of this tenant's resources
	keyID  string
	apiKey string // the secret of a member API key
}

func isoSetup(t *testing.T, s *servertest.Server, prefix string, projects int) isoTenant {
	t.Helper()
	ten := isoTenant{Tenant: s.Signup(t, prefix), ids: map[string][]string{}}
	for i := range projects {
		id := s.Create(t, ten.Token, "/v1/projects", map[string]string{"name": prefix + " project " + string(rune('A'+i))})
		ten.ids["/v1/projects"] = append(ten.ids["/v1/projects"], id)
	}
	member := s.Create(t, ten.Token, "/v1/users", map[string]string{
		"email": "member@" + ten.Slug + ".example.com", "password": servertest.Password, "role": "member",
	})
	ten.ids["/v1/users"] = []string{ten.OwnerID, member}

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: ten.Token, Body: map[string]string{"name": prefix + " key", "role": "member"}})
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /v1/api-keys: %d %s", res.Status, res.Body)
	}
	var key struct{ ID, Key string }
	res.Decode(t, &key)
	ten.keyID, ten.apiKey = key.ID, key.Key
	ten.ids["/v1/api-keys"] = []string{key.ID}

	// A succeeded payment, written as Stripe's outcome would leave it (no Stripe needed here).
	payment := uuid.NewString()
	_, err := pgtest.Owner(t).Exec(context.Background(), `
		INSERT INTO payments (tenant_id, id, amount, currency, status, stripe_payment_intent_id, created_at, updated_at)
		VALUES ($1, $2, 2000, 'usd', 'succeeded', $3, now(), now())`, ten.ID, payment, "pi_iso_"+payment[:8])
	if err != nil {
		t.Fatal(err)
	}
	ten.ids["/v1/payments"] = []string{payment}

	endpoint := s.Create(t, ten.Token, "/v1/webhook-endpoints", map[string]any{"url": "https://hooks.example.com/" + prefix, "event_types": []string{"*"}})
	ten.ids["/v1/webhook-endpoints"] = []string{endpoint}
	delivery := uuid.NewString()
	_, err = pgtest.Owner(t).Exec(context.Background(), `
		INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'test.iso', '{}', 'failed', now(), now(), now())`, ten.ID, delivery, endpoint, uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	ten.ids["/v1/webhook-deliveries"] = []string{endpoint + "/" + delivery}

	invoice := uuid.NewString()
	_, err = pgtest.Owner(t).Exec(context.Background(), `
		INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
		VALUES ($1, $2, '2026-01-01', '2026-02-01', 'usd', 'free', '[]', 0, 0, 'open', now(), now())`, ten.ID, invoice)
	if err != nil {
		t.Fatal(err)
	}
	ten.ids["/v1/invoices"] = []string{invoice}

	res = s.Do(t, servertest.Request{Method: "POST", Path: "/v1/tenant/exports", Token: ten.Token})
	var export struct{ ID string }
	if res.Decode(t, &export); res.Status != http.StatusAccepted {
		t.Fatalf("POST /v1/tenant/exports: %d %s", res.Status, res.Body)
	}
	ten.ids["/v1/tenant/exports"] = []string{export.ID}
	invitation := s.Create(t, ten.Token, "/v1/invitations", map[string]string{"email": "invitee@" + ten.Slug + ".example.com", "role": "member"})
	ten.ids["/v1/invitations"] = []string{invitation}
	return ten
}

// isoSnapshot is what a tenant sees of its own resources, to show that nothing changed.
type isoSnapshot struct {
	resources map[string]string // path → body of its GET
	apiKeys   []string          // id, name and role of each listed key
	events    []string          // the event log's ids, newest first
}

func isoSnap(t *testing.T, s *servertest.Server, ten isoTenant) isoSnapshot {
	t.Helper()
	snap := isoSnapshot{resources: map[string]string{}}
	for _, coll := range []string{"/v1/projects", "/v1/users"} {
		for _, id := range ten.ids[coll] {
			p := coll + "/" + id
			res := s.Do(t, servertest.Request{Method: "GET", Path: p, Token: ten.Token})
			if res.Status != http.StatusOK {
				t.Fatalf("GET %s as its own tenant: %d %s", p, res.Status, res.Body)
			}
			snap.resources[p] = string(res.Body)
		}
	}
	for _, raw := range s.ListAll(t, ten.Token, "/v1/api-keys") {
		var k struct{ ID, Name, Role string }
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		snap.apiKeys = append(snap.apiKeys, k.ID+" "+k.Name+" "+k.Role)
	}
	snap.events = servertest.IDs(t, s.ListAll(t, ten.Token, "/v1/events"))
	return snap
}

// TestIsolationIDRoutes: given another tenant's ids, every id-taking route answers 404
// not_found, exactly as for an id that exists nowhere, and changes nothing on either side.
func TestIsolationIDRoutes(t *testing.T) {
	s := servertest.New(t, withStripe)
	a := isoSetup(t, s, "iso-a", 1)
	b := isoSetup(t, s, "iso-b", 2)

	beforeA, beforeB := isoSnap(t, s, a), isoSnap(t, s, b)

	for _, rt := range servertest.IDRoutes {
		ids := b.ids[rt.Collection]
		if len(ids) == 0 {
			t.Fatalf("%s %s: the fixtures made no %s of tenant B; add one to isoSetup", rt.Method, rt.Pattern, rt.Collection)
		}
		for _, id := range ids {
			res := s.Do(t, servertest.Request{Method: rt.Method, Path: rt.Path(id), Token: a.Token, Body: rt.Body, Header: rt.Header()})
			if res.Status != http.StatusNotFound {
				t.Errorf("%s %s with tenant B's id as A's owner: %d %s, want 404", rt.Method, rt.Path(id), res.Status, res.Body)
				continue
			}
			got := res.Problem(t)
			if got.Code != "not_found" || got.Status != http.StatusNotFound {
				t.Errorf("%s %s: problem %+v, want status 404 code not_found", rt.Method, rt.Path(id), got)
			}

			// The answer must not tell B's id from one that exists nowhere.
			nowhere := uuid.NewString()
			ctl := s.Do(t, servertest.Request{Method: rt.Method, Path: rt.Path(nowhere), Token: a.Token, Body: rt.Body, Header: rt.Header()})
			if ctl.Status != http.StatusNotFound {
				t.Errorf("%s %s (an id of no tenant): %d %s, want 404", rt.Method, rt.Path(nowhere), ctl.Status, ctl.Body)
				continue
			}
			want := ctl.Problem(t)
			if got.Code != want.Code || strings.ReplaceAll(got.Detail, id, "{id}") != strings.ReplaceAll(want.Detail, nowhere, "{id}") {
				t.Errorf("%s %s: another tenant's id answers %q/%q, an unknown id %q/%q: existence leaks",
					rt.Method, rt.Pattern, got.Code, got.Detail, want.Code, want.Detail)
			}
		}
	}

	afterA, afterB := isoSnap(t, s, a), isoSnap(t, s, b)
	isoSameSnapshot(t, "B", beforeB, afterB)
	isoSameSnapshot(t, "A", beforeA, afterA)

	// B's key was not revoked by A's DELETE: it still authenticates, as itself.
	res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/me", Token: b.apiKey})
	var me struct{ ID string }
	if res.Status != http.StatusOK {
		t.Fatalf("GET /v1/me with B's API key after A tried to delete it: %d %s", res.Status, res.Body)
	}
	if res.Decode(t, &me); me.ID != b.keyID {
		t.Errorf("GET /v1/me with B's API key: id %s, want %s", me.ID, b.keyID)
	}
}

func isoSameSnapshot(t *testing.T, who string, before, after isoSnapshot) {
	t.Helper()
	for p, body := range before.resources {
		if after.resources[p] != body {
			t.Errorf("tenant %s's %s changed:\nbefore %s\nafter  %s", who, p, body, after.resources[p])
		}
	}
	if !slices.Equal(before.apiKeys, after.apiKeys) {
		t.Errorf("tenant %s's API keys changed: before %v, after %v", who, before.apiKeys, after.apiKeys)
	}
	if !slices.Equal(before.events, after.events) {
		t.Errorf("tenant %s's event log changed: before %d events, after %d", who, len(before.events), len(after.events))
	}
}

// TestIsolationLists: every list shows the caller's own rows, never the other tenant's, both
// ways round, with a user token and with an API key.
func TestIsolationLists(t *testing.T) {
	s := servertest.New(t, withStripe)
	a := isoSetup(t, s, "isl-a", 2)
	b := isoSetup(t, s, "isl-b", 2)

	// Every id of a tenant, its events' ids included.
	allIDs := func(ten isoTenant) []string {
		ids := []string{ten.ID}
		for _, coll := range []string{"/v1/projects", "/v1/users", "/v1/api-keys"} {
			ids = append(ids, ten.ids[coll]...)
		}
		return append(ids, servertest.IDs(t, s.ListAll(t, ten.Token, "/v1/events"))...)
	}
	idsA, idsB := allIDs(a), allIDs(b)

	check := func(t *testing.T, me isoTenant, token string, theirs []string) {
		for _, list := range servertest.ListPaths {
			items := s.ListAll(t, token, list)
			got := servertest.IDs(t, items)
			for _, id := range me.ids[list] {
				if !slices.Contains(got, id) {
					t.Errorf("GET %s as %s: its own %s is missing from %v", list, me.Slug, id, got)
				}
			}
			if list == "/v1/events" && len(items) == 0 {
				t.Errorf("GET /v1/events as %s: empty, yet the tenant made projects and users", me.Slug)
			}
			for i, raw := range items {
				for _, other := range theirs {
					if bytes.Contains(raw, []byte(other)) {
						t.Errorf("GET %s as %s: item %d mentions the other tenant's id %s: %s", list, me.Slug, i, other, raw)
					}
				}
				if list == "/v1/events" {
					var ev struct {
						TenantID string `json:"tenant_id"`
					}
					if err := json.Unmarshal(raw, &ev); err != nil {
						t.Fatal(err)
					}
					if ev.TenantID != me.ID {
						t.Errorf("GET /v1/events as %s: event of tenant %q: %s", me.Slug, ev.TenantID, raw)
					}
				}
			}
		}
	}

	t.Run("A's owner", func(t *testing.T) { check(t, a, a.Token, idsB) })
	t.Run("B's owner", func(t *testing.T) { check(t, b, b.Token, idsA) })

	t.Run("A's API key", func(t *testing.T) {
		// A member key: it may list projects and events, not users or keys.
		got := servertest.IDs(t, s.ListAll(t, a.apiKey, "/v1/projects"))
		if !slices.Equal(got, a.ids["/v1/projects"]) {
			t.Errorf("GET /v1/projects with A's key: %v, want A's %v", got, a.ids["/v1/projects"])
		}
		for _, raw := range s.ListAll(t, a.apiKey, "/v1/events") {
			for _, other := range idsB {
				if bytes.Contains(raw, []byte(other)) {
					t.Errorf("GET /v1/events with A's key mentions B's id %s: %s", other, raw)
				}
			}
		}
		for _, id := range b.ids["/v1/projects"] {
			for _, method := range []string{"GET", "PATCH"} {
				var body any
				if method == "PATCH" {
					body = map[string]string{"name": "taken over by key"}
				}
				res := s.Do(t, servertest.Request{Method: method, Path: "/v1/projects/" + id, Token: a.apiKey, Body: body})
				if res.Status != http.StatusNotFound || res.Problem(t).Code != "not_found" {
					t.Errorf("%s /v1/projects/%s (B's) with A's API key: %d %s, want 404 not_found", method, id, res.Status, res.Body)
				}
			}
			res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects/" + id, Token: b.apiKey})
			var p struct{ Name string }
			if res.Decode(t, &p); res.Status != http.StatusOK || strings.Contains(p.Name, "taken over") {
				t.Errorf("GET /v1/projects/%s with B's key: %d %s", id, res.Status, res.Body)
			}
		}
	})

	t.Run("GET /v1/tenant", func(t *testing.T) {
		for _, c := range []struct {
			who   string
			token string
			want  isoTenant
		}{
			{"A's owner token", a.Token, a},
			{"A's API key", a.apiKey, a},
			{"B's owner token", b.Token, b},
			{"B's API key", b.apiKey, b},
		} {
			res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/tenant", Token: c.token})
			var got struct{ ID, Slug string }
			if res.Status != http.StatusOK {
				t.Errorf("GET /v1/tenant with %s: %d %s", c.who, res.Status, res.Body)
				continue
			}
			if res.Decode(t, &got); got.ID != c.want.ID || got.Slug != c.want.Slug {
				t.Errorf("GET /v1/tenant with %s: %s/%s, want %s/%s", c.who, got.ID, got.Slug, c.want.ID, c.want.Slug)
			}
		}
	})
}

// TestIsolationTableCoversRouter: servertest.IDRoutes lists exactly the tenant routes with
// {id}, so a new one is probed by TestIsolationIDRoutes as soon as it is registered.
func TestIsolationTableCoversRouter(t *testing.T) {
	s := servertest.New(t, withStripe)
	var registered []string
	for _, r := range s.WalkRoutes(t) {
		if strings.Contains(r.Pattern, "{id}") && !strings.HasPrefix(r.Pattern, "/v1/admin/") {
			registered = append(registered, r.String())
		}
	}
	if len(registered) == 0 {
		t.Fatal("chi.Walk found no route with {id}: the walk is broken")
	}
	var table []string
	for _, rt := range servertest.IDRoutes {
		table = append(table, rt.Method+" "+rt.Pattern)
	}
	for _, r := range registered {
		if !slices.Contains(table, r) {
			t.Errorf("%s takes an id but is not in servertest.IDRoutes: add it (and a fixture in isoSetup)", r)
		}
	}
	for _, r := range table {
		if !slices.Contains(registered, r) {
			t.Errorf("servertest.IDRoutes lists %s, which the router does not serve", r)
		}
	}
}
