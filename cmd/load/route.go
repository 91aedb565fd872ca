package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/saasbase/saasbase/internal/server/bare"
)

// A route names an endpoint the way the statistics group requests: "METHOD /pattern", the
// pattern with {name} placeholders as in the service's router, so every GET of a project
// lands in one row whatever its id. A third word in parentheses tells apart traffic sent to
// the same endpoint for another purpose, e.g. "GET /v1/projects (flood)", whose answers would
// otherwise drown those of the mix.
//
// Routes are constants rather than values built from parts so the name in the table and the
// request sent can never drift apart.
type route string

const (
	routeSignup        route = "POST /v1/signup"
	routeToken         route = "POST /v1/auth/token"
	routeAdminTenant   route = "PATCH /v1/admin/tenants/{id}"
	routeGetProject    route = "GET /v1/projects/{id}"
	routeListProjects  route = "GET /v1/projects"
	routeFlood         route = "GET /v1/projects (flood)"
	routeCreateProject route = "POST /v1/projects"
	routeUpdateProject route = "PATCH /v1/projects/{id}"
	routeUsageEvents   route = "POST /v1/usage/events"
	routeOFREPBulk     route = "POST /ofrep/v1/evaluate/flags"
	routePayment       route = "POST /v1/payments"
	routePaymentReplay route = "POST /v1/payments (replay)"
	routeEntitlements  route = "GET /v1/entitlements"
	routeEvents        route = "GET /v1/events"
	routeBareProject   route = "GET " + bare.Pattern // the baseline server's, not the service's
)

// method is the route's HTTP method.
func (r route) method() string {
	m, _, _ := strings.Cut(string(r), " ")
	return m
}

// pattern is the route's path pattern, without the purpose.
func (r route) pattern() string {
	_, rest, _ := strings.Cut(string(r), " ")
	p, _, _ := strings.Cut(rest, " ")
	return p
}

// path fills the pattern's placeholders with params, in order, each escaped as one path
// segment. A count that does not match is a bug in the caller, so it panics.
func (r route) path(params ...string) string {
	var b strings.Builder
	rest, n := r.pattern(), 0
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 || n == len(params) {
			panic(fmt.Sprintf("route %q: %d params do not fill the pattern", r, len(params)))
		}
		b.WriteString(rest[:open])
		b.WriteString(url.PathEscape(params[n]))
		rest, n = rest[open+end+1:], n+1
	}
	if n != len(params) {
		panic(fmt.Sprintf("route %q: %d params for %d placeholders", r, len(params), n))
	}
	b.WriteString(rest)
	return b.String()
}
