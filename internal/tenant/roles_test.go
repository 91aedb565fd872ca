package tenant_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
	"github.com/saasbase/saasbase/internal/tenant"
)

// TestCurrentRoleCostsOneReadPerTTL: authentication asks for the user's current role on every
// tenant request, so the answer, a role or the user's absence, costs one round trip per user
// and TTL however many requests ask, and one more after the replica's own change.
func TestCurrentRoleCostsOneReadPerTTL(t *testing.T) {
	ctx := context.Background()
	s := servertest.New(t)
	a := s.Signup(t, "rolecache")
	memberID, _ := s.AddUser(t, a, "member")
	var trips pgtest.RoundTrips
	db, err := postgres.Open(ctx, pgtest.RuntimeURL(t), postgres.Options{Tracer: &trips})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const ttl = 500 * time.Millisecond
	clk := clock.NewFixed(time.Now())
	roles := tenant.NewRoles(&tenant.Users{DB: db}, clk, ttl)
	tenantID, userID := uuid.MustParse(a.ID), uuid.MustParse(memberID)

	ask := func(times int, role auth.Role, exists bool, wantTrips int64) {
		t.Helper()
		for range times {
			got, ok, err := roles.CurrentRole(ctx, tenantID, userID)
			if err != nil || got != role || ok != exists {
				t.Fatalf("CurrentRole = %q, %t, %v; want %q, %t", got, ok, err, role, exists)
			}
		}
		if n := trips.N.Load(); n != wantTrips {
			t.Fatalf("%d round trips, want %d", n, wantTrips)
		}
	}
	ask(1000, auth.RoleMember, true, 1)
	clk.Advance(ttl - time.Millisecond)
	ask(1000, auth.RoleMember, true, 1)
	clk.Advance(time.Millisecond)
	ask(1000, auth.RoleMember, true, 2)
	roles.Invalidate(tenantID, userID)
	ask(1, auth.RoleMember, true, 3)

	// Deleted elsewhere: the stale answer lasts the TTL, then the absence is cached in turn.
	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + memberID, Token: a.Token}).Want(t, http.StatusNoContent, "")
	ask(1, auth.RoleMember, true, 3)
	clk.Advance(ttl)
	ask(1000, "", false, 4)
}
