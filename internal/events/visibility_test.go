package events_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// adminOnly reports whether an event describes a resource only admins may read.
func adminOnly(typ string) bool {
	return strings.HasPrefix(typ, "user.") || strings.HasPrefix(typ, "webhook_endpoint.")
}

// TestEventLogFollowsRoles: user events carry emails and roles, webhook endpoint events carry
// URLs, which only admins may read elsewhere; GET /v1/events leaves them out of a member's
// list (not a 403), even when asked for by type, and pages stay full.
func TestEventLogFollowsRoles(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "events-roles")
	_, member := s.LoginNewUser(t, a, "member")
	memberKey := s.CreateAPIKey(t, a.Token, "reader", "member")
	_, admin := s.LoginNewUser(t, a, "admin")

	// Hidden events among the visible ones, on every page: a project, then a user.
	for i := range 60 {
		s.Create(t, admin.AccessToken, "/v1/projects", map[string]string{"name": fmt.Sprintf("p%d", i)})
		s.AddUser(t, a, "member")
	}
	s.Create(t, admin.AccessToken, "/v1/webhook-endpoints", map[string]any{"url": "https://hooks.example.com/saasbase", "event_types": []string{"project.*"}})

	all := listEvents(t, s, admin.AccessToken, nil)
	var visible []listedEvent
	for _, e := range all {
		if !adminOnly(e.Type) {
			visible = append(visible, e)
		}
	}
	types := typesOf(all)
	if !slices.Contains(types, "user.created") || !slices.Contains(types, "webhook_endpoint.created") {
		t.Fatalf("an admin's event log lacks user.created or webhook_endpoint.created: %v", types)
	}
	if len(visible) < 61 {
		t.Fatalf("%d events visible to members, want at least 61", len(visible))
	}

	for who, token := range map[string]string{"member": member.AccessToken, "member API key": *memberKey.Key} {
		// The first page is full of what a member may see.
		res := s.Get(t, token, "/v1/events")
		var page eventPage
		res.Decode(t, &page)
		if res.Status != http.StatusOK || len(page.Data) != 50 || page.NextCursor == nil {
			t.Fatalf("%s's first page: %d, %d events, next cursor %v; want 50 and a cursor", who, res.Status, len(page.Data), page.NextCursor)
		}
		// Every page: exactly the visible events, in the admin's order.
		got := listEvents(t, s, token, url.Values{"limit": {"7"}})
		if !slices.EqualFunc(got, visible, func(a, b listedEvent) bool { return a.ID == b.ID }) {
			t.Errorf("%s's event log:\n got %v\nwant %v", who, typesOf(got), typesOf(visible))
		}
		for _, typ := range []string{"user.created", "webhook_endpoint.created"} {
			if got := listEvents(t, s, token, url.Values{"type": {typ}}); len(got) != 0 {
				t.Errorf("%s's GET /v1/events?type=%s: %d events, want none", who, typ, len(got))
			}
		}
	}
	if got := listEvents(t, s, a.Token, url.Values{"type": {"user.created"}}); len(got) != 63 {
		t.Errorf("the owner's GET /v1/events?type=user.created: %d events, want 63", len(got))
	}
}

// An event family that nobody has said members may read is for admins only: the event log
// fails closed when a module adds a family (here "secret_thing.*") and forgets to classify it.
func TestEventLogHidesUnlistedFamiliesFromMembers(t *testing.T) {
	ctx := context.Background()
	s := servertest.New(t)
	a := s.Signup(t, "events-unlisted")
	_, member := s.LoginNewUser(t, a, "member")
	s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "listed"})
	outbox := &events.Outbox{Clock: clock.System{}}
	err := s.App.DB.InTenantTx(ctx, uuid.MustParse(a.ID), func(tx pgx.Tx) error {
		return outbox.Append(ctx, tx, uuid.MustParse(a.ID), "secret_thing.created", map[string]string{"secret": "for admins"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if types := typesOf(listEvents(t, s, a.Token, nil)); !slices.Contains(types, "secret_thing.created") {
		t.Fatalf("the owner's event log lacks secret_thing.created: %v", types)
	}
	types := typesOf(listEvents(t, s, member.AccessToken, nil))
	if slices.Contains(types, "secret_thing.created") || !slices.Contains(types, "project.created") {
		t.Errorf("a member's event log: %v; want project.created and no secret_thing.created", types)
	}
}
