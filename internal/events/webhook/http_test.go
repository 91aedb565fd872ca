package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/events/webhook"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/openapi/openapitest"
)

// api serves the webhook routes as internal/server mounts them, behind a stand-in for
// authentication: the bearer token is "<role>:<tenant id>". Every answer is checked against
// openapi.yaml.
type api struct {
	srv    *httptest.Server
	router routers.Router
}

func newAPI(t *testing.T, h *webhook.Handler) *api {
	r := chi.NewRouter()
	r.Use(httpx.WithRequestID, fakeAuth, auth.RequireRole(auth.RoleAdmin))
	hf := func(f func(http.ResponseWriter, *http.Request) error) http.Handler { return httpx.HandlerFunc(f) }
	r.Method(http.MethodGet, "/v1/webhook-endpoints", hf(h.List))
	r.Method(http.MethodPost, "/v1/webhook-endpoints", hf(h.Create))
	r.Method(http.MethodGet, "/v1/webhook-endpoints/{id}", hf(h.Get))
	r.Method(http.MethodDelete, "/v1/webhook-endpoints/{id}", hf(h.Delete))
	r.Method(http.MethodPost, "/v1/webhook-endpoints/{id}/enable", hf(h.Enable))
	r.Method(http.MethodGet, "/v1/webhook-endpoints/{id}/deliveries", hf(h.Deliveries))
	r.Method(http.MethodPost, "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry", hf(h.Retry))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &api{srv: srv, router: mergedSpec(t)}
}

func fakeAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, tenant, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), ":")
		id, err := uuid.Parse(tenant)
		if err != nil {
			httpx.Error(w, r, auth.ErrUnauthorized)
			return
		}
		p := auth.Principal{Kind: auth.KindUser, TenantID: id, ID: uuid.New(), Role: auth.Role(role)}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// mergedSpec is openapi.yaml, loaded and validated.
func mergedSpec(t *testing.T) routers.Router {
	_, router := openapitest.Load(t)
	return router
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a *api) do(t *testing.T, method, path, token string, body any) answer {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, a.srv.URL+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	ans := answer{status: res.StatusCode, header: res.Header, body: out}

	openapitest.Check(t, a.router, req, raw, res.StatusCode, res.Header, out)
	return ans
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
	return v
}

func TestWebhookRoutes(t *testing.T) {
	f := newFixture(t, true)
	tenant, other := f.newTenant(), f.newTenant()
	admin, member, stranger := "admin:"+tenant.String(), "member:"+tenant.String(), "owner:"+other.String()
	a := newAPI(t, &webhook.Handler{Endpoints: f.endpoints})
	rcv := newReceiver(t, http.StatusServiceUnavailable)

	if got := a.do(t, "POST", "/v1/webhook-endpoints", member, map[string]any{"url": rcv.URL, "event_types": []string{"*"}}); got.status != http.StatusForbidden {
		t.Errorf("member: %d, want 403", got.status)
	}
	for _, bad := range []map[string]any{
		{"url": rcv.URL},
		{"url": rcv.URL, "event_types": []string{}},
		{"url": rcv.URL, "event_types": []string{"Project Created"}},
		{"url": "not a url", "event_types": []string{"*"}},
		{"url": rcv.URL, "event_types": []string{"*"}, "secret": "mine"},
	} {
		if got := a.do(t, "POST", "/v1/webhook-endpoints", admin, bad); got.status != http.StatusBadRequest {
			t.Errorf("POST %v: %d, want 400", bad, got.status)
		}
	}

	created := a.do(t, "POST", "/v1/webhook-endpoints", admin, map[string]any{"url": rcv.URL, "event_types": []string{"project.created", "project.*"}})
	if created.status != http.StatusCreated || created.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d, Cache-Control %q: %s", created.status, created.header.Get("Cache-Control"), created.body)
	}
	ep := decode[webhook.Endpoint](t, created)
	if !strings.HasPrefix(ep.Secret, "whsec_") || ep.Status != "enabled" {
		t.Fatalf("created %+v", ep)
	}
	path := "/v1/webhook-endpoints/" + ep.ID.String()

	list := a.do(t, "GET", "/v1/webhook-endpoints", admin, nil)
	if list.status != http.StatusOK || bytes.Contains(list.body, []byte("whsec_")) || !bytes.Contains(list.body, []byte(ep.ID.String())) {
		t.Errorf("list: %d %s", list.status, list.body)
	}
	if got := a.do(t, "GET", path, admin, nil); got.status != http.StatusOK || bytes.Contains(got.body, []byte("secret")) {
		t.Errorf("get: %d %s", got.status, got.body)
	}
	for _, p := range []string{path, path + "/deliveries"} {
		if got := a.do(t, "GET", p, stranger, nil); got.status != http.StatusNotFound {
			t.Errorf("another tenant's GET %s: %d, want 404", p, got.status)
		}
	}
	if got := a.do(t, "GET", "/v1/webhook-endpoints", stranger, nil); bytes.Contains(got.body, []byte(ep.ID.String())) {
		t.Error("another tenant lists the endpoint")
	}

	f.emit(tenant, "project.created", map[string]string{"name": "x"})
	f.deliverDue() // 503: the delivery waits for its retry
	ds := decode[struct{ Data []webhook.Delivery }](t, a.do(t, "GET", path+"/deliveries", admin, nil)).Data
	if len(ds) != 1 || len(ds[0].Attempts) != 1 || *ds[0].Attempts[0].StatusCode != 503 || ds[0].NextAttemptAt == nil {
		t.Fatalf("deliveries %+v, want one with a 503 attempt and a next attempt", ds)
	}
	retryPath := path + "/deliveries/" + ds[0].ID.String() + "/retry"
	if got := a.do(t, "POST", path+"/deliveries/"+uuid.NewString()+"/retry", admin, nil); got.status != http.StatusNotFound {
		t.Errorf("retry of an unknown delivery: %d, want 404", got.status)
	}
	if got := a.do(t, "POST", retryPath, stranger, nil); got.status != http.StatusNotFound {
		t.Errorf("another tenant's retry: %d, want 404", got.status)
	}
	if got := a.do(t, "POST", retryPath, admin, nil); got.status != http.StatusAccepted {
		t.Errorf("retry: %d %s", got.status, got.body)
	}
	if f.deliverDue() != 1 || len(rcv.requests()) != 2 {
		t.Errorf("the retried delivery was not sent at once")
	}

	if got := a.do(t, "POST", path+"/enable", admin, nil); got.status != http.StatusOK {
		t.Errorf("enable: %d %s", got.status, got.body)
	}
	if got := a.do(t, "POST", path+"/enable", stranger, nil); got.status != http.StatusNotFound {
		t.Errorf("another tenant's enable: %d, want 404", got.status)
	}
	if got := a.do(t, "DELETE", path, stranger, nil); got.status != http.StatusNotFound {
		t.Errorf("another tenant's delete: %d, want 404", got.status)
	}
	if got := a.do(t, "DELETE", path, admin, nil); got.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", got.status, got.body)
	}
	if got := a.do(t, "GET", path, admin, nil); got.status != http.StatusNotFound {
		t.Errorf("get after delete: %d, want 404", got.status)
	}
	if got := a.do(t, "GET", "/v1/webhook-endpoints/not-a-uuid", admin, nil); got.status != http.StatusBadRequest {
		t.Errorf("a bad id: %d, want 400", got.status)
	}
}
