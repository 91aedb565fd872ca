package plans_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/server/servertest"
)

func TestAdminPutPlan(t *testing.T) {
	s := servertest.New(t)
	op := s.PlatformToken(t)
	code := "test-" + uuid.NewString()[:8]
	body := func(name string) map[string]any {
		return map[string]any{"name": name, "currency": "eur", "base_fee": "12.50",
			"rate_limit": map[string]any{"requests_per_second": 7, "burst": 14}}
	}
	put := func(path string, b any) *servertest.Response {
		return s.Do(t, servertest.Request{Method: "PUT", Path: path, Token: op, Body: b})
	}
	var plan struct {
		Code, Name, Currency string
		BaseFee              string `json:"base_fee"`
	}

	res := put("/v1/admin/plans/"+code, body("Test"))
	res.Want(t, http.StatusCreated, "")
	res.Decode(t, &plan)
	if plan.Code != code || plan.Name != "Test" || plan.Currency != "eur" || plan.BaseFee != "12.5" {
		t.Fatalf("created plan %+v", plan)
	}
	b := body("Test, renamed")
	b["code"] = code
	res = put("/v1/admin/plans/"+code, b)
	res.Want(t, http.StatusOK, "")
	res.Decode(t, &plan)
	if plan.Name != "Test, renamed" {
		t.Fatalf("replaced plan %+v", plan)
	}

	b["code"] = "another-code"
	b["name"] = "Hijack"
	put("/v1/admin/plans/"+code, b).Want(t, http.StatusBadRequest, "validation_failed")

	// A limit the limiter cannot hold is refused, not stored to fail every request of the
	// plan's tenants.
	slow := body("Slow")
	slow["rate_limit"] = map[string]any{"requests_per_second": 1e-300, "burst": 1}
	if p := put("/v1/admin/plans/"+code, slow).Problem(t); !p.Field("rate_limit.requests_per_second") {
		t.Fatalf("a plan limited to 1e-300/s: %+v, want rate_limit.requests_per_second named", p)
	}

	// A tenant may move to the new plan.
	a := s.Signup(t, "newplan")
	s.Do(t, servertest.Request{Method: "PATCH", Path: "/v1/admin/tenants/" + a.ID, Token: op, Body: map[string]string{"plan": code}}).Want(t, http.StatusOK, "")

	// Tenants may not write the catalog.
	s.Do(t, servertest.Request{Method: "PUT", Path: "/v1/admin/plans/" + code, Token: a.Token, Body: body("Mine")}).Want(t, http.StatusForbidden, "forbidden")

	res = s.Get(t, "", "/v1/plans")
	res.Want(t, http.StatusOK, "")
	var list struct {
		Data []struct{ Code, Name string }
	}
	res.Decode(t, &list)
	names := map[string]string{}
	for _, p := range list.Data {
		names[p.Code] = p.Name
	}
	if names[code] != "Test, renamed" {
		t.Fatalf("GET /v1/plans shows plan %s as %q: %s", code, names[code], res.Body)
	}
}

func TestListPlans(t *testing.T) {
	s := servertest.New(t)
	res := s.Get(t, "", "/v1/plans")
	res.Want(t, http.StatusOK, "")
	var list struct {
		Data []struct {
			Code      string
			RateLimit auth.RateLimit `json:"rate_limit"`
		}
	}
	res.Decode(t, &list)
	seen := map[string]bool{}
	for i, p := range list.Data {
		seen[p.Code] = true
		if i > 0 && list.Data[i-1].Code >= p.Code {
			t.Errorf("plans not ordered by code: %q before %q", list.Data[i-1].Code, p.Code)
		}
		if p.RateLimit.RequestsPerSecond <= 0 || p.RateLimit.Burst < 1 {
			t.Errorf("plan %s has no rate limit: %+v", p.Code, p.RateLimit)
		}
	}
	for _, code := range []string{"free", "pro", "enterprise"} {
		if !seen[code] {
			t.Errorf("GET /v1/plans lacks %s: %s", code, res.Body)
		}
	}
}
