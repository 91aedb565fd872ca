package tenant_test

import (
	"net/http"
	"testing"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestSignupThenProjects(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "acme")

	me := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/me", Token: a.Token})
	if me.Status != http.StatusOK {
		t.Fatalf("GET /v1/me: %d %s", me.Status, me.Body)
	}
	id := s.Create(t, a.Token, "/v1/projects", map[string]string{"name": "Apollo", "description": "to the moon"})
	got := s.Do(t, servertest.Request{Method: "GET", Path: "/v1/projects/" + id, Token: a.Token})
	var p struct{ Name, Description string }
	got.Decode(t, &p)
	if got.Status != http.StatusOK || p.Name != "Apollo" || p.Description != "to the moon" {
		t.Fatalf("GET project: %d %+v", got.Status, p)
	}
	for _, path := range []string{"/v1/tenant", "/v1/users", "/v1/api-keys", "/v1/events", "/v1/projects", "/v1/plans", "/livez", "/readyz", "/.well-known/jwks.json"} {
		if res := s.Do(t, servertest.Request{Method: "GET", Path: path, Token: a.Token}); res.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, res.Status, res.Body)
		}
	}
}
