package auth_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

// Every route that hashes or checks a password shares one bound: while it is full, signup,
// the password grant (known email or not), user creation and a password change answer 503
// server_busy with Retry-After instead of queueing; once a slot is free, they work again.
func TestPasswordWorkIsBoundedOverHTTP(t *testing.T) {
	s := servertest.New(t, func(c *config.Config) { c.PasswordConcurrency = 1 })
	ten := s.Signup(t, "pw-bound")
	login := func(email string) servertest.Request {
		return servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
			"grant_type": "password", "tenant": ten.Slug, "email": email, "password": servertest.Password}}
	}
	requests := []struct {
		name string
		req  servertest.Request
	}{
		{"signup", servertest.Request{Method: "POST", Path: "/v1/signup", Body: map[string]string{
			"tenant_name": "busy", "tenant_slug": "busy-" + servertest.RandomSuffix(), "email": "owner@busy.example.com", "password": servertest.Password}}},
		{"password grant", login(ten.OwnerEmail)},
		{"password grant, unknown email", login("nobody@example.com")},
		{"user creation", servertest.Request{Method: "POST", Path: "/v1/users", Token: ten.Token, Body: map[string]string{
			"email": "member@" + ten.Slug + ".example.com", "password": servertest.Password, "role": "member"}}},
		{"password change", servertest.Request{Method: "POST", Path: "/v1/me/password", Token: ten.Token, Body: map[string]string{
			"current_password": servertest.Password, "new_password": "another horse battery staple"}}},
	}

	release := s.App.Passwords.Hold()
	for _, c := range requests {
		t.Run(c.name, func(t *testing.T) {
			res := s.Do(t, c.req)
			res.Want(t, http.StatusServiceUnavailable, "server_busy")
			if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("Retry-After %q, want whole seconds, at least 1", res.Header.Get("Retry-After"))
			}
		})
	}
	release()
	s.Do(t, login(ten.OwnerEmail)).Want(t, http.StatusOK, "")
}
