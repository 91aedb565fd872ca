package tenant_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestRolesGuardAdminRoutes(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "roles")
	_, member := s.LoginNewUser(t, a, "member")
	_, admin := s.LoginNewUser(t, a, "admin")

	for _, req := range []servertest.Request{
		{Method: "POST", Path: "/v1/users", Body: map[string]string{"email": "x@roles.example.com", "password": servertest.UserPassword, "role": "member"}},
		{Method: "GET", Path: "/v1/users"},
		{Method: "GET", Path: "/v1/users/" + a.OwnerID},
		{Method: "PATCH", Path: "/v1/users/" + a.OwnerID, Body: map[string]string{"role": "member"}},
		{Method: "DELETE", Path: "/v1/users/" + a.OwnerID},
		{Method: "GET", Path: "/v1/api-keys"},
		{Method: "POST", Path: "/v1/api-keys", Body: map[string]string{"name": "k", "role": "member"}},
		{Method: "PATCH", Path: "/v1/tenant", Body: map[string]string{"name": "renamed"}},
	} {
		req.Token = member.AccessToken
		res := s.Do(t, req)
		if res.Status != http.StatusForbidden || res.Problem(t).Code != "forbidden" {
			t.Errorf("%s %s as a member: %d %s, want 403 forbidden", req.Method, req.Path, res.Status, res.Body)
		}
	}
	// The same routes are open to an admin.
	s.Get(t, admin.AccessToken, "/v1/users").Want(t, http.StatusOK, "")
	s.Get(t, admin.AccessToken, "/v1/api-keys").Want(t, http.StatusOK, "")
	s.Get(t, member.AccessToken, "/v1/projects").Want(t, http.StatusOK, "")
}

func TestUsersAndSignupConflicts(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "dupes")
	b := s.Signup(t, "dupes-other")

	_, email := s.AddUser(t, a, "member")
	for _, e := range []string{email, strings.ToUpper(email), " " + email + " "} {
		res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/users", Token: a.Token,
			Body: map[string]string{"email": e, "password": servertest.UserPassword, "role": "member"}})
		if strings.TrimSpace(e) != e && res.Status == http.StatusBadRequest {
			continue // an email with spaces may be refused as invalid instead
		}
		res.Want(t, http.StatusConflict, "email_taken")
	}
	// An email is unique per tenant, not across tenants.
	s.Create(t, b.Token, "/v1/users", map[string]string{"email": email, "password": servertest.UserPassword, "role": "member"})

	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/signup", Body: map[string]string{
		"tenant_name": "Copycat", "tenant_slug": a.Slug, "email": "someone@copycat.example.com", "password": servertest.Password,
	}})
	res.Want(t, http.StatusConflict, "slug_taken")
	// The failed signup left no user behind that could log in.
	if res := s.PasswordGrant(t, a.Slug, "someone@copycat.example.com", servertest.Password); res.Status != http.StatusUnauthorized {
		t.Fatalf("a user of the refused signup logs in: %d %s", res.Status, res.Body)
	}
}

func TestOnlyOwnersGrantOwner(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "grant")
	memberID, _ := s.AddUser(t, a, "member")
	_, admin := s.LoginNewUser(t, a, "admin")

	patch := func(token, id, role string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + id, Token: token, Body: map[string]string{"role": role}})
	}
	patch(admin.AccessToken, memberID, "owner").Want(t, http.StatusForbidden, "forbidden")
	patch(admin.AccessToken, a.OwnerID, "member").Want(t, http.StatusForbidden, "forbidden")
	s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + a.OwnerID, Token: admin.AccessToken}).Want(t, http.StatusForbidden, "forbidden")
	res := s.Do(t, servertest.Request{Method: "POST", Path: "/v1/users", Token: admin.AccessToken,
		Body: map[string]string{"email": "boss@grant.example.com", "password": servertest.UserPassword, "role": "owner"}})
	res.Want(t, http.StatusForbidden, "forbidden")

	// Nothing changed.
	res = s.Get(t, a.Token, "/v1/users/"+memberID)
	res.Want(t, http.StatusOK, "")
	var u struct{ Role string }
	res.Decode(t, &u)
	if u.Role != "member" {
		t.Fatalf("the member is now %q", u.Role)
	}

	// An admin may promote a member to admin; an owner may grant owner.
	patch(admin.AccessToken, memberID, "admin").Want(t, http.StatusOK, "")
	res = patch(a.Token, memberID, "owner")
	res.Want(t, http.StatusOK, "")
	res.Decode(t, &u)
	if u.Role != "owner" {
		t.Fatalf("PATCH role=owner answered role %q", u.Role)
	}
}

func TestLastOwnerStays(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "lastowner")

	patch := func(token, id, role string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + id, Token: token, Body: map[string]string{"role": role}})
	}
	del := func(token, id string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + id, Token: token})
	}
	patch(a.Token, a.OwnerID, "admin").Want(t, http.StatusConflict, "conflict")
	patch(a.Token, a.OwnerID, "member").Want(t, http.StatusConflict, "conflict")
	del(a.Token, a.OwnerID).Want(t, http.StatusConflict, "conflict")

	// With a second owner, one may step down; then the other is the last one.
	secondID, secondEmail := s.AddUser(t, a, "member")
	patch(a.Token, secondID, "owner").Want(t, http.StatusOK, "")
	second := s.Login(t, a.Slug, secondEmail, servertest.UserPassword) // a token with the new role
	patch(second.AccessToken, a.OwnerID, "admin").Want(t, http.StatusOK, "")
	patch(second.AccessToken, secondID, "admin").Want(t, http.StatusConflict, "conflict")
	del(second.AccessToken, secondID).Want(t, http.StatusConflict, "conflict")

	res := s.Get(t, second.AccessToken, "/v1/users?limit=200")
	res.Want(t, http.StatusOK, "")
	var list struct{ Data []struct{ ID, Role string } }
	res.Decode(t, &list)
	owners := 0
	for _, u := range list.Data {
		if u.Role == "owner" {
			owners++
		}
	}
	if owners != 1 {
		t.Fatalf("%d owners, want 1: %s", owners, res.Body)
	}
}

func TestDemotedOrDeletedUserLosesSessions(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "demote")

	t.Run("demoted", func(t *testing.T) {
		id, email := s.AddUser(t, a, "admin")
		p := s.Login(t, a.Slug, email, servertest.UserPassword)
		s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/users/" + id, Token: a.Token, Body: map[string]string{"role": "member"}}).Want(t, http.StatusOK, "")
		s.RefreshGrant(t, p.RefreshToken).WantUnauthorized(t)
		// A new login carries the new role.
		p = s.Login(t, a.Slug, email, servertest.UserPassword)
		if me := s.Me(t, p.AccessToken); me.Role != "member" {
			t.Fatalf("after demotion the new token says %q", me.Role)
		}
		if r := s.Refresh(t, p.RefreshToken); s.Me(t, r.AccessToken).Role != "member" {
			t.Fatal("a refreshed token carries a role other than member")
		}
	})
	t.Run("deleted", func(t *testing.T) {
		id, email := s.AddUser(t, a, "member")
		p := s.Login(t, a.Slug, email, servertest.UserPassword)
		s.Do(t, servertest.Request{Method: "DELETE", Path: "/v1/users/" + id, Token: a.Token}).Want(t, http.StatusNoContent, "")
		s.RefreshGrant(t, p.RefreshToken).WantUnauthorized(t)
		s.PasswordGrant(t, a.Slug, email, servertest.UserPassword).Want(t, http.StatusUnauthorized, "invalid_credentials")
		s.Get(t, a.Token, "/v1/users/"+id).Want(t, http.StatusNotFound, "not_found")
	})
}

func TestPasswordChange(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "passwd")
	_, email := s.AddUser(t, a, "member")
	p1 := s.Login(t, a.Slug, email, servertest.UserPassword)
	p2 := s.Login(t, a.Slug, email, servertest.UserPassword)

	change := func(token, current, next string) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "POST", Path: "/v1/me/password", Token: token,
			Body: map[string]string{"current_password": current, "new_password": next}})
	}
	const newPassword = "a brand new passphrase"
	change(p1.AccessToken, "not the password", newPassword).Want(t, http.StatusUnauthorized, "invalid_credentials")
	s.Refresh(t, p2.RefreshToken) // a wrong current password revoked nothing
	s.Login(t, a.Slug, email, servertest.UserPassword)

	change(p1.AccessToken, servertest.UserPassword, newPassword).Want(t, http.StatusNoContent, "")
	s.RefreshGrant(t, p1.RefreshToken).WantUnauthorized(t)
	s.PasswordGrant(t, a.Slug, email, servertest.UserPassword).Want(t, http.StatusUnauthorized, "invalid_credentials")
	s.Login(t, a.Slug, email, newPassword)

	// An API key has no password to change.
	key := s.CreateAPIKey(t, a.Token, "k", "member")
	change(*key.Key, "whatever it is", newPassword).Want(t, http.StatusForbidden, "forbidden")
}
