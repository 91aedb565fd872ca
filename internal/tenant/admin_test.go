package tenant_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestSuspendedTenantIsRefusedOnEveryReplica(t *testing.T) {
	s := servertest.New(t)
	replica := servertest.New(t) // another replica on the same database
	a := s.Signup(t, "suspend")
	b := s.Signup(t, "suspend-bystander")
	op := s.PlatformToken(t)
	key := *s.CreateAPIKey(t, a.Token, "k", "member").Key

	// Both replicas have served the tenant, so each holds it in its cache.
	s.Me(t, a.Token)
	replica.Me(t, a.Token)

	setStatus := func(status string) {
		t.Helper()
		res := s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: op, Body: map[string]string{"status": status}})
		res.Want(t, http.StatusOK, "")
		var tn struct{ Status string }
		res.Decode(t, &tn)
		if tn.Status != status {
			t.Fatalf("PATCH status=%s answered %s", status, res.Body)
		}
	}
	setStatus("suspended")

	// At once on the replica that made the change, for tokens and keys alike.
	for _, token := range []string{a.Token, key} {
		for _, path := range []string{"/v1/me", "/v1/projects", "/v1/tenant"} {
			s.Get(t, token, path).Want(t, http.StatusForbidden, "tenant_suspended")
		}
	}
	s.PasswordGrant(t, a.Slug, a.OwnerEmail, servertest.Password).Want(t, http.StatusForbidden, "tenant_suspended")
	// A refresh token cannot outlast the suspension either.
	s.Do(t, servertest.Request{Method: "POST", Path: "/v1/auth/token", Body: map[string]string{
		"grant_type": "refresh_token", "refresh_token": a.RefreshToken}}).Want(t,
		http.StatusForbidden, "tenant_suspended")

	s.Me(t, b.Token) // other tenants are not affected

	// Soon on the other replica.
	servertest.Poll(t, 5*time.Second, "the other replica refuses the suspended tenant", func() (bool, string) {
		res := replica.Get(t, a.Token, "/v1/me")
		return res.Status == http.StatusForbidden && res.Problem(t).Code == "tenant_suspended", string(res.Body)
	})
	replica.Get(t, key, "/v1/projects").Want(t, http.StatusForbidden, "tenant_suspended")
	replica.Me(t, b.Token)

	// The operator still sees the tenant.
	res := s.Get(t, op, "/v1/admin/tenants/"+a.ID)
	res.Want(t, http.StatusOK, "")

	setStatus("active")
	s.Me(t, a.Token)
	s.Me(t, key)
	s.Login(t, a.Slug, a.OwnerEmail, servertest.Password)
	servertest.Poll(t, 5*time.Second, "the other replica serves the reactivated tenant", func() (bool, string) {
		res := replica.Get(t, a.Token, "/v1/me")
		return res.Status == http.StatusOK, string(res.Body)
	})
}

func TestAdminTenantUpdates(t *testing.T) {
	s := servertest.New(t)
	a := s.Signup(t, "adminpatch")
	op := s.PlatformToken(t)

	type tenantView struct {
		Plan      string
		Status    string
		RateLimit *auth.RateLimit `json:"rate_limit"`
	}
	patch := func(body any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: op, Body: body})
	}
	get := func() tenantView {
		t.Helper()
		res := s.Get(t, op, "/v1/admin/tenants/"+a.ID)
		res.Want(t, http.StatusOK, "")
		var v tenantView
		res.Decode(t, &v)
		return v
	}

	res := patch(map[string]string{"plan": "no-such-plan"})
	res.Want(t, http.StatusBadRequest, "validation_failed")
	if !res.Problem(t).Field("plan") {
		t.Fatalf("the error does not name plan: %s", res.Body)
	}
	if v := get(); v.Plan != "free" {
		t.Fatalf("plan %q after a refused change, want free", v.Plan)
	}
	patch(map[string]string{"plan": "pro"}).Want(t, http.StatusOK, "")
	if v := get(); v.Plan != "pro" {
		t.Fatalf("plan %q, want pro", v.Plan)
	}
	res = s.Get(t, a.Token, "/v1/tenant")
	res.Want(t, http.StatusOK, "")
	var own tenantView
	res.Decode(t, &own)
	if own.Plan != "pro" {
		t.Fatalf("the tenant sees plan %q, want pro", own.Plan)
	}

	patch(map[string]any{"rate_limit": map[string]any{"requests_per_second": 5, "burst": 10}}).Want(t, http.StatusOK, "")
	if v := get(); v.RateLimit == nil || v.RateLimit.RequestsPerSecond != 5 || v.RateLimit.Burst != 10 {
		t.Fatalf("rate_limit %+v, want 5/s burst 10", v.RateLimit)
	}
	// A change that does not mention rate_limit leaves it alone.
	patch(map[string]string{"status": "active"}).Want(t, http.StatusOK, "")
	if v := get(); v.RateLimit == nil || v.RateLimit.Burst != 10 {
		t.Fatalf("rate_limit %+v after a change of status, want it kept", v.RateLimit)
	}
	patch(map[string]any{"rate_limit": map[string]any{"requests_per_second": 0, "burst": 10}}).Want(t, http.StatusBadRequest, "validation_failed")
	// A limit the limiter cannot hold (a burst that would take longer than years to refill)
	// is refused, not stored to fail every request of the tenant.
	if p := patch(map[string]any{"rate_limit": map[string]any{"requests_per_second": 1e-300, "burst": 1}}).Problem(t); !p.Field("rate_limit.requests_per_second") {
		t.Fatalf("a rate limit of 1e-300/s: %+v, want rate_limit.requests_per_second named", p)
	}
	patch(map[string]any{"rate_limit": nil}).Want(t, http.StatusOK, "")
	if v := get(); v.RateLimit != nil {
		t.Fatalf("rate_limit %+v after rate_limit: null, want none", v.RateLimit)
	}

	patch(map[string]string{"status": "deleted"}).Want(t, http.StatusBadRequest, "validation_failed")
	res = s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + uuid.NewString(), Token: op, Body: map[string]string{"status": "active"}})
	res.Want(t, http.StatusNotFound, "not_found")
}
