package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// listedEvent is an event as GET /v1/events lists it.
type listedEvent struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	TenantID   *string         `json:"tenant_id"`
	OccurredAt string          `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// eventPage is a page of GET /v1/events.
type eventPage struct {
	Data       []listedEvent `json:"data"`
	NextCursor *string       `json:"next_cursor"`
}

// listEvents walks every page of GET /v1/events with the given query, checking that no event
// is listed twice, and answers the events in the order they were listed.
func listEvents(t testing.TB, s *servertest.Server, token string, query url.Values) []listedEvent {
	t.Helper()
	var out []listedEvent
	seen := map[string]bool{}
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	for range 10000 {
		res := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?" + q.Encode(), Token: token})
		if res.Status != http.StatusOK {
			t.Fatalf("GET /v1/events?%s: %d %s", q.Encode(), res.Status, res.Body)
		}
		var page eventPage
		res.Decode(t, &page)
		for _, e := range page.Data {
			if seen[e.ID] {
				t.Fatalf("event %s (%s) listed twice", e.ID, e.Type)
			}
			seen[e.ID] = true
			out = append(out, e)
		}
		if page.NextCursor == nil {
			return out
		}
		if len(page.Data) == 0 {
			t.Fatalf("an empty page with a next cursor: %s", res.Body)
		}
		q.Set("cursor", *page.NextCursor)
	}
	t.Fatal("the event list does not end")
	return nil
}

func typesOf(evs []listedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func dataOf(t testing.TB, e listedEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("event %s data %s: %v", e.Type, e.Data, err)
	}
	return m
}

// TestOutboxCommitsWithTheChange: an event row commits or rolls back together with the
// change that wrote it.
func TestOutboxCommitsWithTheChange(t *testing.T) {
	ctx := context.Background()
	s := servertest.New(t)
	a := s.Signup(t, "outbox")
	tenantID := uuid.MustParse(a.ID)
	outbox := &events.Outbox{Clock: clock.System{}}
	owner := pgtest.Owner(t)

	write := func(fn func(tx pgx.Tx, projectID uuid.UUID) error) (projects, evs int, err error) {
		t.Helper()
		projectID := uuid.Must(uuid.NewV7())
		err = s.App.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO projects (tenant_id, id, name) VALUES ($1, $2, 'atomic')", tenantID, projectID); err != nil {
				return err
			}
			return fn(tx, projectID)
		})
		projects = countRows(t, owner, "SELECT count(*) FROM projects WHERE tenant_id = $1 AND id = $2", tenantID, projectID)
		evs = countRows(t, owner, "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND data->>'project' = $2", tenantID, projectID.String())
		return projects, evs, err
	}

	t.Run("rolled back", func(t *testing.T) {
		boom := errors.New("boom")
		projects, evs, err := write(func(tx pgx.Tx, id uuid.UUID) error {
			if err := outbox.Append(ctx, tx, tenantID, "test.atomic", map[string]string{"project": id.String()}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTenantTx = %v, want fn's error", err)
		}
		if projects != 0 || evs != 0 {
			t.Fatalf("after a rollback: %d project rows, %d event rows; want none", projects, evs)
		}
	})
	t.Run("event fails, change rolled back", func(t *testing.T) {
		projects, _, err := write(func(tx pgx.Tx, id uuid.UUID) error {
			return outbox.Append(ctx, tx, tenantID, "test.atomic", map[string]any{"project": id.String(), "bad": make(chan int)})
		})
		if err == nil {
			t.Fatal("appending an event whose data cannot be encoded succeeded")
		}
		if projects != 0 {
			t.Fatalf("the project of a failed event was committed")
		}
	})
	t.Run("committed", func(t *testing.T) {
		projects, evs, err := write(func(tx pgx.Tx, id uuid.UUID) error {
			return outbox.Append(ctx, tx, tenantID, "test.atomic", map[string]string{"project": id.String()})
		})
		if err != nil {
			t.Fatal(err)
		}
		if projects != 1 || evs != 1 {
			t.Fatalf("after a commit: %d project rows, %d event rows; want one each", projects, evs)
		}
		if got := listEvents(t, s, a.Token, url.Values{"type": {"test.atomic"}}); len(got) != 1 {
			t.Fatalf("GET /v1/events lists %d test.atomic events, want 1", len(got))
		}
	})
}

// TestEventsOfEveryChange: each successful change yields exactly one event of its type in the
// tenant's log, newest first; refused changes yield none.
func TestEventsOfEveryChange(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "evlog")
	b := s.Signup(t, "evlog-other")
	s.Create(t, b.Token, "/v1/projects", map[string]string{"name": "b's"})

	p1 := s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "one"})
	res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/projects/" + p1, Token: a.Token, Body: map[string]string{"name": "one, renamed"}})
	if res.Status != http.StatusOK {
		t.Fatalf("PATCH project: %d %s", res.Status, res.Body)
	}
	p2 := s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "two"})
	if res := s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/projects/" + p1, Token: a.Token}); res.Status != http.StatusNoContent {
		t.Fatalf("DELETE project: %d %s", res.Status, res.Body)
	}
	userID, email := s.AddUser(t, a, "member")

	// Refused changes write nothing.
	for _, req := range []servertest.Request{
		{Method: "PATCH", Path: "/v1/projects/" + p1, Body: map[string]string{"name": "gone"}},
		{Method: "DELETE", Path: "/v1/projects/" + p1},
		{Method: "PATCH", Path: "/v1/projects/" + p2, Body: map[string]string{"name": ""}},
		{Method: "POST", Path: "/v1/projects", Body: map[string]string{"description": "no name"}},
		{Method: "POST", Path: "/v1/users", Body: map[string]string{"email": email, "password": servertest.UserPassword, "role": "member"}},
	} {
		req.Token = a.Token
		if res := s.Do(t, req); res.Status < 400 {
			t.Fatalf("%s %s: %d, want a refusal", req.Method, req.Path, res.Status)
		}
	}

	all := listEvents(t, s, a.Token, url.Values{"limit": {"200"}})
	want := []string{"user.created", "project.deleted", "project.created", "project.updated", "project.created", "user.created", "tenant.created"}
	if got := typesOf(all); !slices.Equal(got, want) {
		t.Fatalf("GET /v1/events types %v, want (newest first) %v", got, want)
	}
	for _, e := range all {
		if e.TenantID == nil || *e.TenantID != a.ID {
			t.Errorf("event %s %s has tenant_id %v, want %s", e.ID, e.Type, e.TenantID, a.ID)
		}
		if e.OccurredAt == "" {
			t.Errorf("event %s has no occurred_at", e.ID)
		}
	}
	check := func(i int, field, want string) {
		t.Helper()
		if got := dataOf(t, all[i])[field]; got != want {
			t.Errorf("event %d (%s): data.%s = %v, want %s", i, all[i].Type, field, got, want)
		}
	}
	check(0, "id", userID)
	check(0, "email", email)
	check(1, "id", p1)
	check(2, "id", p2)
	check(3, "id", p1)
	check(3, "name", "one, renamed")
	check(4, "id", p1)
	check(4, "name", "one")
	check(5, "id", a.OwnerID)
	check(6, "id", a.ID)
	check(6, "slug", a.Slug)
	for _, e := range all {
		if d := dataOf(t, e); d["password_hash"] != nil || d["password"] != nil {
			t.Errorf("event %s carries a password: %s", e.Type, e.Data)
		}
	}

	// The type filter.
	created := listEvents(t, s, a.Token, url.Values{"type": {"project.created"}})
	if len(created) != 2 || created[0].ID != all[2].ID || created[1].ID != all[4].ID {
		t.Fatalf("?type=project.created = %v, want events %s and %s", typesOf(created), all[2].ID, all[4].ID)
	}
	if none := listEvents(t, s, a.Token, url.Values{"type": {"no.such.type"}}); len(none) != 0 {
		t.Fatalf("?type=no.such.type lists %v", typesOf(none))
	}

	// Pages of one walk the same list, each event once, in the same order.
	var paged []listedEvent
	res = s.Do(t, servertest.Request{Method: "GET", Path: "/v1/events?limit=1", Token: a.Token})
	var first eventPage
	res.Decode(t, &first)
	if len(first.Data) != 1 || first.NextCursor == nil {
		t.Fatalf("?limit=1 answered %s", res.Body)
	}
	paged = listEvents(t, s, a.Token, url.Values{"limit": {"1"}})
	if len(paged) != len(all) {
		t.Fatalf("pages of 1 list %d events, one page %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].ID != all[i].ID {
			t.Fatalf("pages of 1: event %d is %s, want %s", i, paged[i].ID, all[i].ID)
		}
	}
	paged = listEvents(t, s, a.Token, url.Values{"limit": {"1"}, "type": {"project.created"}})
	if len(paged) != 2 {
		t.Fatalf("pages of 1 of project.created: %v", typesOf(paged))
	}
}

func TestFailedSignupWritesNoEvent(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "evsignup")
	owner := pgtest.Owner(t)

	const all = "SELECT count(*) FROM outbox WHERE type = 'tenant.created'"
	const ofSlug = "SELECT count(*) FROM outbox WHERE type = 'tenant.created' AND data->>'slug' = $1"
	before, beforeSlug := countRows(t, owner, all), countRows(t, owner, ofSlug, a.Slug)
	if beforeSlug != 1 {
		t.Fatalf("%d tenant.created events for %s after its signup, want 1", beforeSlug, a.Slug)
	}
	beforeUsers := countRows(t, owner, "SELECT count(*) FROM outbox WHERE type = 'user.created'")

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/signup", Body: map[string]string{
		"tenant_name": "Again", "tenant_slug": a.Slug, "email": "again@evsignup.example.com", "password": servertest.Password,
	}})
	if res.Status != http.StatusConflict || res.Problem(t).Code != "slug_taken" {
		t.Fatalf("signup with a taken slug: %d %s", res.Status, res.Body)
	}
	if after := countRows(t, owner, all); after != before {
		t.Errorf("tenant.created events: %d before the refused signup, %d after", before, after)
	}
	if after := countRows(t, owner, ofSlug, a.Slug); after != 1 {
		t.Errorf("%d tenant.created events for %s, want 1", after, a.Slug)
	}
	if after := countRows(t, owner, "SELECT count(*) FROM outbox WHERE type = 'user.created'"); after != beforeUsers {
		t.Errorf("user.created events: %d before the refused signup, %d after", beforeUsers, after)
	}
	if n := countRows(t, owner, "SELECT count(*) FROM tenants WHERE slug = $1", a.Slug); n != 1 {
		t.Errorf("%d tenants with slug %s", n, a.Slug)
	}
	if got := typesOf(listEvents(t, s, a.Token, nil)); !slices.Equal(got, []string{"user.created", "tenant.created"}) {
		t.Errorf("the existing tenant's events are now %v", got)
	}
}

func TestPlatformEventsStayHidden(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "evplatform")
	b := s.Signup(t, "evplatform-b")
	owner := pgtest.Owner(t)
	code := "evtest-" + uuid.NewString()[:8]

	res := s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/plans/" + code, Token: s.PlatformToken(t), Body: map[string]any{
		"name": "Hidden", "currency": "usd", "base_fee": "1", "rate_limit": map[string]any{"requests_per_second": 1, "burst": 1},
	}})
	if res.Status != http.StatusCreated {
		t.Fatalf("PUT plan: %d %s", res.Status, res.Body)
	}
	// The event exists, as a platform event.
	n := countRows(t, owner, "SELECT count(*) FROM outbox WHERE type = 'plan.changed' AND data->>'code' = $1 AND tenant_id = $2", code, postgres.PlatformTenant)
	if n != 1 {
		t.Fatalf("%d platform plan.changed events for %s, want 1", n, code)
	}

	for _, tn := range []servertest.Tenant{a, b} {
		for _, e := range listEvents(t, s, tn.Token, url.Values{"limit": {"200"}}) {
			if e.Type == "plan.changed" || e.TenantID == nil || *e.TenantID != tn.ID {
				t.Errorf("tenant %s sees event %s %s of tenant %v", tn.Slug, e.ID, e.Type, e.TenantID)
			}
		}
		if got := listEvents(t, s, tn.Token, url.Values{"type": {"plan.changed"}}); len(got) != 0 {
			t.Errorf("tenant %s sees %d plan.changed events", tn.Slug, len(got))
		}
	}
}
