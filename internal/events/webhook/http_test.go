package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

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
	r.Method(http.MethodPost, "/v1/webhook-endpoints/{id}/rotate-secret", hf(h.RotateSecret))
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

// Without WEBHOOKS_ALLOW_PRIVATE_NETWORKS, a URL whose host is a literal non-public address
// is refused at registration, IPv6 forms that carry or stand for a private address included.
func TestCreateRefusesNonPublicAddresses(t *testing.T) {
	f := newFixture(t, false)
	admin := "admin:" + f.newTenant().String()
	strict := *f.endpoints
	strict.AllowPrivate = false
	a := newAPI(t, &webhook.Handler{Endpoints: &strict})

	for _, u := range []string{
		"https://[::127.0.0.1]/hook",                          // IPv4-compatible loopback
		"https://[::ffff:10.0.0.1]/hook",                      // IPv4-mapped private
		"https://[64:ff9b::a9fe:a9fe]/hook",                   // NAT64 of the cloud metadata address
		"https://[fec0::1]/hook",                              // site-local
		"https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook", // Teredo, client 10.0.0.1
		"https://[2002:7f00:1::1]:8443/hook",                  // 6to4 of 127.0.0.1
		"https://[fe80::1%25eth0]/hook",                       // link-local with a zone
	} {
		got := a.do(t, "POST", "/v1/webhook-endpoints", admin, map[string]any{"url": u, "event_types": []string{"*"}})
		p := decode[struct {
			Code   string
			Errors []struct{ Field string }
		}](t, got)
		if got.status != http.StatusBadRequest || p.Code != "validation_failed" || len(p.Errors) != 1 || p.Errors[0].Field != "url" {
			t.Errorf("POST %s: %d %s, want 400 validation_failed naming url", u, got.status, got.body)
		}
	}
	for _, u := range []string{"https://[2606:2800:21f:cb07::1]/hook", "https://93.184.215.14/hook"} {
		if got := a.do(t, "POST", "/v1/webhook-endpoints", admin, map[string]any{"url": u, "event_types": []string{"*"}}); got.status != http.StatusCreated {
			t.Errorf("POST %s: %d %s, want 201", u, got.status, got.body)
		}
	}
}

// A tenant cannot use deliveries to learn which internal names resolve: an endpoint whose
// name does not resolve and one whose name resolves to a private address show the same
// error in their attempts.
func TestDeliveryErrorHidesResolution(t *testing.T) {
	f := newFixture(t, false)
	tenant := f.newTenant()
	admin := "admin:" + tenant.String()
	a := newAPI(t, &webhook.Handler{Endpoints: f.endpoints}) // the fixture registers any host
	rcv := newReceiver(t)
	_, port, _ := strings.Cut(strings.TrimPrefix(rcv.URL, "http://"), ":")

	var paths []string
	for _, u := range []string{"http://localhost:" + port + "/hook", "http://nonexistent.invalid:" + port + "/hook"} {
		created := a.do(t, "POST", "/v1/webhook-endpoints", admin, map[string]any{"url": u, "event_types": []string{"project.created"}})
		if created.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", u, created.status, created.body)
		}
		paths = append(paths, "/v1/webhook-endpoints/"+decode[webhook.Endpoint](t, created).ID.String()+"/deliveries")
	}
	var log bytes.Buffer // the handler serialises writes
	f.deliverer.Logger = slog.New(slog.NewTextHandler(&log, nil))
	f.emit(tenant, "project.created", map[string]string{})
	if n := f.deliverDue(); n != 2 {
		t.Fatalf("sent %d deliveries, want 2", n)
	}

	var shown []string
	for _, p := range paths {
		ds := decode[struct{ Data []webhook.Delivery }](t, a.do(t, "GET", p, admin, nil)).Data
		if len(ds) != 1 || len(ds[0].Attempts) != 1 || ds[0].Attempts[0].Error == nil || ds[0].Attempts[0].StatusCode != nil {
			t.Fatalf("GET %s: %+v, want one delivery with one failed attempt and no status", p, ds)
		}
		shown = append(shown, *ds[0].Attempts[0].Error)
	}
	if shown[0] != shown[1] {
		t.Errorf("attempt errors differ, telling which name resolves:\n  resolves to 127.0.0.1: %q\n  does not resolve:      %q", shown[0], shown[1])
	}
	if len(rcv.requests()) != 0 {
		t.Errorf("the receiver on loopback got %d requests", len(rcv.requests()))
	}
	// The operator still learns which is which.
	for _, detail := range []string{webhook.ErrForbiddenAddress.Error(), "lookup nonexistent.invalid"} {
		if !strings.Contains(log.String(), detail) {
			t.Errorf("the log does not mention %s:\n%s", detail, log.String())
		}
	}
}

// Rotating a secret answers the new one, once. For PreviousSecretFor after, deliveries carry
// two signatures, one per secret, each verifying on its own; then only the new one's.
func TestRotateSecret(t *testing.T) {
	f := newFixture(t, true)
	tenant, other := f.newTenant(), f.newTenant()
	admin, member, stranger := "admin:"+tenant.String(), "member:"+tenant.String(), "owner:"+other.String()
	a := newAPI(t, &webhook.Handler{Endpoints: f.endpoints})
	rcv := newReceiver(t)

	created := decode[webhook.Endpoint](t, a.do(t, "POST", "/v1/webhook-endpoints", admin, map[string]any{"url": rcv.URL, "event_types": []string{"project.*"}}))
	path := "/v1/webhook-endpoints/" + created.ID.String()
	for token, want := range map[string]int{member: http.StatusForbidden, stranger: http.StatusNotFound} {
		if got := a.do(t, "POST", path+"/rotate-secret", token, nil); got.status != want {
			t.Errorf("rotate as %s: %d, want %d", token, got.status, want)
		}
	}
	if got := a.do(t, "POST", "/v1/webhook-endpoints/"+uuid.NewString()+"/rotate-secret", admin, nil); got.status != http.StatusNotFound {
		t.Errorf("rotate an unknown endpoint: %d, want 404", got.status)
	}

	rotated := a.do(t, "POST", path+"/rotate-secret", admin, nil)
	if rotated.status != http.StatusOK || rotated.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate: %d, Cache-Control %q: %s", rotated.status, rotated.header.Get("Cache-Control"), rotated.body)
	}
	ep := decode[webhook.Endpoint](t, rotated)
	if ep.ID != created.ID || !strings.HasPrefix(ep.Secret, "whsec_") || ep.Secret == created.Secret {
		t.Fatalf("rotated %+v, want the endpoint with a new secret (was %s)", ep, created.Secret)
	}
	for _, p := range []string{path, "/v1/webhook-endpoints"} {
		if got := a.do(t, "GET", p, admin, nil); got.status != http.StatusOK || bytes.Contains(got.body, []byte("whsec_")) {
			t.Errorf("GET %s shows a secret: %d %s", p, got.status, got.body)
		}
	}
	var data string
	if err := f.owner.QueryRow(context.Background(), "SELECT data::text FROM outbox WHERE tenant_id = $1 AND type = 'webhook_endpoint.secret_rotated'", tenant).Scan(&data); err != nil {
		t.Fatalf("no webhook_endpoint.secret_rotated event: %v", err)
	}
	if strings.Contains(data, "whsec_") || !strings.Contains(data, created.ID.String()) {
		t.Errorf("the event's data %s: want the endpoint without its secret", data)
	}

	// verifies reports which of the secrets each signature of a request verifies with.
	verifies := func(r received, secrets ...string) []string {
		t.Helper()
		sigs := strings.Fields(r.header.Get("webhook-signature"))
		var by []string
		for _, sig := range sigs {
			for _, secret := range secrets {
				h := r.header.Clone()
				h.Set("webhook-signature", sig)
				if webhook.Verify(secret, h, r.body, f.clock.Now(), time.Minute) == nil {
					by = append(by, secret)
				}
			}
		}
		if len(by) != len(sigs) {
			t.Errorf("signatures %q: %d of them verify with no secret", sigs, len(sigs)-len(by))
		}
		return by
	}
	f.emit(tenant, "project.created", map[string]string{})
	f.clock.Advance(webhook.PreviousSecretFor - time.Second)
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("sent %d deliveries, want 1", n)
	}
	if by := verifies(rcv.requests()[0], ep.Secret, created.Secret); !slices.Equal(by, []string{ep.Secret, created.Secret}) {
		t.Errorf("within a day of the rotation: signatures by %q, want the new secret's then the previous one's", by)
	}
	f.clock.Advance(time.Second)
	f.emit(tenant, "project.created", map[string]string{})
	if n := f.deliverDue(); n != 1 {
		t.Fatalf("sent %d deliveries, want 1", n)
	}
	if by := verifies(rcv.requests()[1], ep.Secret, created.Secret); !slices.Equal(by, []string{ep.Secret}) {
		t.Errorf("a day after the rotation: signatures by %q, want the new secret's only", by)
	}
}
