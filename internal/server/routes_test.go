package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/server/servertest"
)

// TestOperatorRoutesArePlatformOnly: modules register whole paths on the router of their
// callers (httpx.Routers), so only this ties /v1/admin to the operators' chain. Every route
// under /v1/admin refuses a tenant's owner as platform-only, and no other route does.
func TestOperatorRoutesArePlatformOnly(t *testing.T) {
	s := servertest.New(t, withStripe)
	owner := s.Signup(t, "routers")
	param := regexp.MustCompile(`\{[^}]+\}`)
	operatorRoutes := 0
	for _, rt := range s.WalkRoutes(t) {
		if !strings.HasPrefix(rt.Pattern, "/v1/") {
			continue
		}
		req := servertest.Request{Method: rt.Method, Path: param.ReplaceAllString(rt.Pattern, uuid.NewString()), Token: owner.Token}
		if rt.Method == http.MethodPost || rt.Method == http.MethodPut || rt.Method == http.MethodPatch {
			req.Body = map[string]any{}
		}
		res, err := s.TryDo(req)
		if err != nil {
			t.Fatal(err)
		}
		platformOnly := res.Status == http.StatusForbidden && strings.Contains(string(res.Body), "platform operators")
		operator := strings.HasPrefix(rt.Pattern, "/v1/admin/")
		if operator {
			operatorRoutes++
		}
		if operator != platformOnly {
			t.Errorf("%s as a tenant's owner: %d %s; want platform-only: %v", rt, res.Status, res.Body, operator)
		}
	}
	if operatorRoutes == 0 {
		t.Fatal("no route under /v1/admin: the walk is broken")
	}
}
