package auth_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/postgres/pgtest"
	"github.com/saasbase/saasbase/internal/server/servertest"
	"github.com/saasbase/saasbase/migrations"
)

// credential is a bearer token or API key under test, named for failure messages.
type credential struct{ name, token string }

// wantAll checks that every credential gets status (and code, unless "") on GET path.
func wantAll(t *testing.T, s *servertest.Server, creds []credential, path string, status int, code string) {
	t.Helper()
	for _, c := range creds {
		res := s.Get(t, c.token, path)
		if res.Status != status || (code != "" && res.Problem(t).Code != code) {
			t.Errorf("GET %s with %s: %d %s, want %d %s", path, c.name, res.Status, res.Body, status, code)
		}
	}
}

// TestAccessFollowsTheUsersCurrentRole: what a user's tokens and keys may do follows the
// user's role of the moment, on every replica: a demotion holds at once on the replica that
// made it and within a second on the others, for access tokens already issued, for the keys
// the user minted and for keys those keys minted; a promotion raises none of them above what
// they were made with; a deletion refuses them all.
func TestAccessFollowsTheUsersCurrentRole(t *testing.T) {
	s := servertest.New(t)
	replica := servertest.New(t) // another replica on the same database
	a := s.Signup(t, "truth")
	adminID, admin := s.LoginNewUser(t, a, "admin")
	key := *s.CreateAPIKey(t, admin.AccessToken, "admin-made", "admin").Key
	minted := s.CreateAPIKey(t, key, "key-made", "admin")
	if minted.CreatedBy != adminID {
		t.Errorf("a key minted by the admin's key: created_by %q, want the admin %s", minted.CreatedBy, adminID)
	}
	keyOfKey := *minted.Key
	creds := []credential{
		{"the admin's access token", admin.AccessToken},
		{"the admin's API key", key},
		{"a key minted by the admin's key", keyOfKey},
	}
	bystander := []credential{{"the owner's admin key", *s.CreateAPIKey(t, a.Token, "owner-made", "admin").Key}}
	setRole := func(role string) {
		t.Helper()
		s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + adminID, Token: a.Token,
			Body: map[string]string{"role": role}}).Want(t, http.StatusOK, "")
	}

	// Both replicas have served them all, so each holds the admin's role in its cache.
	for _, srv := range []*servertest.Server{s, replica} {
		wantAll(t, srv, creds, "/v1/users", http.StatusOK, "")
	}

	setRole("member")
	// At once on the replica that made the change: refused where a member is, served where
	// a member is, and seen as a member.
	wantAll(t, s, creds, "/v1/users", http.StatusForbidden, "forbidden")
	wantAll(t, s, creds, "/v1/projects", http.StatusOK, "")
	for _, c := range creds {
		if me := s.Me(t, c.token); me.Role != "member" {
			t.Errorf("/v1/me with %s after the demotion: role %q, want member", c.name, me.Role)
		}
	}
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: key,
		Body: map[string]string{"name": "escape", "role": "member"}}).Want(t, http.StatusForbidden, "forbidden")
	// Soon on the other replica.
	for _, c := range creds {
		servertest.Poll(t, 5*time.Second, "the other replica refuses "+c.name+" an admin route", func() (bool, string) {
			res := replica.Get(t, c.token, "/v1/users")
			return res.Status == http.StatusForbidden, string(res.Body)
		})
	}
	wantAll(t, replica, bystander, "/v1/users", http.StatusOK, "")

	// A promotion gives back what the credentials were made with, and nothing above it.
	setRole("owner")
	wantAll(t, s, creds, "/v1/users", http.StatusOK, "")
	for _, c := range creds {
		if me := s.Me(t, c.token); me.Role != "admin" {
			t.Errorf("/v1/me with %s after the promotion to owner: role %q, want admin", c.name, me.Role)
		}
		s.Do(t, servertest.Request{Method: "POST", Path: "/v1/api-keys", Token: c.token,
			Body: map[string]string{"name": "grab", "role": "owner"}}).Want(t, http.StatusForbidden, "forbidden")
	}

	// Deleted: every credential of the user is refused, at once here, soon there; the keys,
	// revoked with the deletion, at once everywhere.
	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + adminID, Token: a.Token}).Want(t, http.StatusNoContent, "")
	wantAll(t, s, creds, "/v1/me", http.StatusUnauthorized, "unauthorized")
	wantAll(t, s, creds, "/v1/projects", http.StatusUnauthorized, "unauthorized")
	wantAll(t, replica, creds[1:], "/v1/projects", http.StatusUnauthorized, "unauthorized")
	servertest.Poll(t, 5*time.Second, "the other replica refuses the deleted user's access token", func() (bool, string) {
		res := replica.Get(t, admin.AccessToken, "/v1/projects")
		return res.Status == http.StatusUnauthorized, string(res.Body)
	})
	var list struct{ Data []struct{ ID string } }
	s.Get(t, a.Token, "/v1/api-keys").Decode(t, &list)
	if len(list.Data) != 1 {
		t.Errorf("after the deletion the tenant lists %d keys, want the owner's one: %+v", len(list.Data), list.Data)
	}
	wantAll(t, s, bystander, "/v1/users", http.StatusOK, "")
	wantAll(t, replica, bystander, "/v1/users", http.StatusOK, "")
}

// TestKeysFromBeforeTheRuleActForTheFirstOwner: keys stored before keys recorded their
// creator act for their tenant's first owner (its oldest owner): never above that owner's
// current role, and revoked with that owner. A key whose tenant has no owner to act for is
// refused.
func TestKeysFromBeforeTheRuleActForTheFirstOwner(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Empty(t)
	m := postgres.Migrator{OwnerURL: url, FS: migrations.FS}
	if err := m.UpTo(ctx, 9); err != nil { // the last migration before keys had creators
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tenantID, orphanTenant := uuid.New(), uuid.New()
	// The first owner has the larger id, so only the creation time picks it.
	second, first := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	ownerKeyID, ownerKey, ownerHash, _ := auth.NewAPIKey(false)
	adminKeyID, adminKey, adminHash, _ := auth.NewAPIKey(false)
	orphanKeyID, orphanKey, orphanHash, _ := auth.NewAPIKey(false)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO tenants (id, name, slug, plan_code) VALUES ($1, 'old', $2, 'free'), ($3, 'ownerless', $4, 'free')",
			[]any{tenantID, "old-" + servertest.RandomSuffix(), orphanTenant, "ownerless-" + servertest.RandomSuffix()}},
		{`INSERT INTO users (tenant_id, id, email, password_hash, role, created_at) VALUES
		      ($1, $2, 'first@old.example.com', 'x', 'owner', '2020-01-01'),
		      ($1, $3, 'second@old.example.com', 'x', 'owner', '2021-01-01'),
		      ($1, $4, 'admin@old.example.com', 'x', 'admin', '2019-01-01')`,
			[]any{tenantID, first, second, uuid.New()}},
		{`INSERT INTO api_keys (tenant_id, id, name, role, secret_hash) VALUES
		      ($1, $2, 'old-owner', 'owner', $3), ($1, $4, 'old-admin', 'admin', $5), ($6, $7, 'orphan', 'owner', $8)`,
			[]any{tenantID, ownerKeyID, ownerHash, adminKeyID, adminHash, orphanTenant, orphanKeyID, orphanHash}},
	} {
		if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}

	s := servertest.New(t, func(c *config.Config) { c.DatabaseURL = url })
	secondToken, err := s.App.Sessions.AccessToken(tenantID, second.String(), auth.RoleOwner, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if me := s.Me(t, ownerKey); me.Role != "owner" {
		t.Fatalf("the old owner key acts as %q, want owner", me.Role)
	}
	s.Get(t, adminKey, "/v1/users").Want(t, http.StatusOK, "")
	var list struct {
		Data []struct {
			ID        string
			CreatedBy string `json:"created_by"`
		}
	}
	s.Get(t, secondToken, "/v1/api-keys").Decode(t, &list)
	if len(list.Data) != 2 {
		t.Fatalf("the tenant lists %d keys, want 2: %+v", len(list.Data), list.Data)
	}
	for _, k := range list.Data {
		if k.CreatedBy != first.String() {
			t.Errorf("key %s: created_by %q, want the first owner %s", k.ID, k.CreatedBy, first)
		}
	}

	// The first owner, not the second, bounds the keys.
	s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + first.String(), Token: secondToken,
		Body: map[string]string{"role": "member"}}).Want(t, http.StatusOK, "")
	if me := s.Me(t, ownerKey); me.Role != "member" {
		t.Errorf("after the first owner's demotion, the old owner key acts as %q, want member", me.Role)
	}
	s.Get(t, adminKey, "/v1/users").Want(t, http.StatusForbidden, "forbidden")

	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + first.String(), Token: secondToken}).Want(t, http.StatusNoContent, "")
	for _, k := range []string{ownerKey, adminKey, orphanKey} {
		s.Get(t, k, "/v1/me").WantUnauthorized(t)
	}
	s.Get(t, secondToken, "/v1/users").Want(t, http.StatusOK, "")
}
