package servertest

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
)

// Route is one method and pattern that the service's chi router serves.
type Route struct {
	Method  string
	Pattern string // chi's pattern with regexps dropped: /v1/projects/{id}
}

func (r Route) String() string { return r.Method + " " + r.Pattern }

var chiParamRegexp = regexp.MustCompile(`\{([^}:]+):[^}]*\}`)

// WalkRoutes lists every method and pattern the service's router serves, sorted.
func (s *Server) WalkRoutes(t testing.TB) []Route {
	t.Helper()
	routes, ok := s.App.Handler().(chi.Routes)
	if !ok {
		t.Fatalf("the service's handler is a %T, not a chi router", s.App.Handler())
	}
	var out []Route
	err := chi.Walk(routes, func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, Route{Method: method, Pattern: chiParamRegexp.ReplaceAllString(pattern, "{$1}")})
		return nil
	})
	if err != nil {
		t.Fatalf("chi.Walk: %v", err)
	}
	slices.SortFunc(out, func(a, b Route) int {
		return strings.Compare(a.String(), b.String())
	})
	return slices.Compact(out)
}

// IDRoute is a tenant route that takes a resource id in its path. Every route with {id}
// outside /v1/admin must be in IDRoutes (TestIsolationTableCoversRouter in internal/server
// checks it against the router), so a new tenant resource cannot ship without being probed
// with another tenant's ids and with ids that are not ids.
type IDRoute struct {
	Method     string
	Pattern    string // as registered in chi
	Collection string // the list endpoint of the resource, which keys the fixtures' ids
	Body       any    // sent with PATCH/POST; valid, so only the id decides the answer
	NeedsKey   bool   // the route requires an Idempotency-Key (a fresh one per request)
}

// IDRoutes are the tenant routes that take an id.
var IDRoutes = []IDRoute{
	{Method: "GET", Pattern: "/v1/projects/{id}", Collection: "/v1/projects"},
	{Method: "PATCH", Pattern: "/v1/projects/{id}", Collection: "/v1/projects", Body: map[string]string{"name": "taken over", "description": "by the other tenant"}},
	{Method: "DELETE", Pattern: "/v1/projects/{id}", Collection: "/v1/projects"},
	{Method: "GET", Pattern: "/v1/users/{id}", Collection: "/v1/users"},
	{Method: "PATCH", Pattern: "/v1/users/{id}", Collection: "/v1/users", Body: map[string]string{"role": "admin"}},
	{Method: "DELETE", Pattern: "/v1/users/{id}", Collection: "/v1/users"},
	{Method: "DELETE", Pattern: "/v1/api-keys/{id}", Collection: "/v1/api-keys"},
	{Method: "GET", Pattern: "/v1/payments/{id}", Collection: "/v1/payments"},
	{Method: "GET", Pattern: "/v1/invoices/{id}", Collection: "/v1/invoices"},
	{Method: "POST", Pattern: "/v1/payments/{id}/refunds", Collection: "/v1/payments", Body: map[string]int{"amount": 100}, NeedsKey: true},
	{Method: "GET", Pattern: "/v1/webhook-endpoints/{id}", Collection: "/v1/webhook-endpoints"},
	{Method: "DELETE", Pattern: "/v1/webhook-endpoints/{id}", Collection: "/v1/webhook-endpoints"},
	{Method: "POST", Pattern: "/v1/webhook-endpoints/{id}/enable", Collection: "/v1/webhook-endpoints"},
	{Method: "POST", Pattern: "/v1/webhook-endpoints/{id}/rotate-secret", Collection: "/v1/webhook-endpoints"},
	{Method: "GET", Pattern: "/v1/webhook-endpoints/{id}/deliveries", Collection: "/v1/webhook-endpoints"},
	{Method: "POST", Pattern: "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry", Collection: "/v1/webhook-deliveries"},
	{Method: "GET", Pattern: "/v1/tenant/exports/{id}", Collection: "/v1/tenant/exports"},
	{Method: "GET", Pattern: "/v1/tenant/exports/{id}/download", Collection: "/v1/tenant/exports"},
	{Method: "DELETE", Pattern: "/v1/invitations/{id}", Collection: "/v1/invitations"},
	{Method: "POST", Pattern: "/v1/invitations/{id}/resend", Collection: "/v1/invitations"},
}

// Header gives a request of the route the headers it needs.
func (r IDRoute) Header() map[string]string {
	if !r.NeedsKey {
		return nil
	}
	return map[string]string{"Idempotency-Key": uuid.NewString()}
}

// Path fills the pattern in; a webhook delivery's "id" is "<endpoint id>/<delivery id>".
func (r IDRoute) Path(id string) string {
	endpoint, delivery, ok := strings.Cut(id, "/")
	if !ok {
		delivery = id
	}
	return strings.NewReplacer("{id}", endpoint, "{delivery_id}", delivery).Replace(r.Pattern)
}

// ListPaths are the tenant's list endpoints; none may show another tenant's rows.
var ListPaths = []string{"/v1/projects", "/v1/users", "/v1/api-keys", "/v1/events", "/v1/payments", "/v1/invoices", "/v1/webhook-endpoints", "/v1/invitations"}
