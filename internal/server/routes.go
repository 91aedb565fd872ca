package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saasbase/saasbase/internal/audit"
	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/billing/invoicing"
	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/billing/payments"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/events/webhook"
	"github.com/saasbase/saasbase/internal/export"
	"github.com/saasbase/saasbase/internal/flags"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/ratelimit"
	"github.com/saasbase/saasbase/internal/tenant"
	"github.com/saasbase/saasbase/internal/tenantlimits"
	"github.com/saasbase/saasbase/openapi"
)

type routes struct {
	app       *App
	authn     *auth.Authenticator
	auth      *auth.Handler
	tenant    *tenant.Handler
	plans     *plans.Handler
	metering  *metering.Handler
	invoices  *invoicing.Handler
	payments  *payments.Handler
	events    *events.Handler
	endpoints *webhook.Handler
	idem      *idempotency.Middleware
	limits    *tenantlimits.Resolver
	flagEval  *flags.Handler
	flagAdmin *flags.AdminHandler
	metrics   *httpx.Metrics
	audit     *audit.Handler
	deletion  *tenant.DeletionHandler
	exports   *export.Handler
	recorder  *audit.Recorder
}

// build lays out the router. The order of middleware is the request's way through the
// service: request id, logging and metrics, recovery, the URL's text (under /v1), routing
// (404, 405), then per group authentication, tenant status, the body's media type, and the
// handler. Authentication and what follows are inline middleware (With), which runs once a
// route is found, so that an unknown path or method is answered alike with or without a
// credential.
func (rt routes) build() (main, metricsOnly http.Handler) {
	a := rt.app
	metricsHandler := promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{})

	r := chi.NewRouter()
	clientIP := httpx.ClientIP{Trusted: a.Config.TrustedProxies}
	r.Use(httpx.WithRequestID)
	if a.Tracing != nil {
		r.Use(httpx.Trace(a.Tracing, clientIP)) // before Observe: the access log line carries the trace id
	}
	r.Use(httpx.Observe(a.Logger, rt.metrics, clientIP), httpx.Recover)
	if len(a.Config.CORSAllowedOrigins) > 0 {
		r.Use(httpx.CORS(a.Config.CORSAllowedOrigins))
	}
	// HEAD is routed as GET wherever no HEAD route is declared (none is); net/http drops
	// the body and keeps the headers.
	r.Use(middleware.GetHead)
	// Text PostgreSQL cannot store is refused before anything (authentication, an idempotency
	// record) can carry the path or the query to the database.
	r.Use(underV1(httpx.CheckURL(r)))
	noRoute := httpx.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return errs.E(errs.NotFound, "not_found", "no route %s %s", r.Method, r.URL.Path)
	})
	r.NotFound(noRoute.ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowed(r, noRoute).ServeHTTP)

	r.Get("/livez", func(w http.ResponseWriter, r *http.Request) {
		httpx.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", a.readyz)
	if a.Config.MetricsAddr == "" {
		r.Handle("/metrics", metricsHandler)
	}
	r.Get("/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openapi.Spec)
	})
	r.Get("/docs", embeddedFile("text/html; charset=utf-8", func() []byte { return openapi.DocsPage }))
	r.Get("/docs/redoc.standalone.js", embeddedFile("text/javascript; charset=utf-8", openapi.Redoc))

	// Each kind of caller gets a router behind its chain, and each module mounts its routes on
	// them, with their whole paths. All are inline routers (With) on the one tree, so a
	// request is routed once, whatever its chain.
	rs := httpx.Routers{
		Root: r,
		// The routes that work without a credential share one budget per client address
		// with the failed authentications (authFailures).
		PerIP:      rt.perIP(authPolicy, a.Config.AuthRatePerMinute),
		Idempotent: rt.idem.Handler(idempotency.Options{}),
	}
	// Every JSON body is checked once its caller is known and before anything reads it (an
	// idempotency record included): the check is last in each chain.
	rs.Public = r.With(httpx.RequireJSON)
	// Every mutating request behind these routers writes its audit entry in the transaction
	// of its change (audit.Recorder); usage ingestion (member) is not audited.
	rs.Operator = r.With(rt.authn.Authenticate, auth.RequirePlatformAdmin, rt.recorder.InTx, httpx.RequireJSON)
	// member is the tenant routes' chain without the media type check, for metering's usage
	// endpoint, which takes CloudEvents' media types (binary mode: any) and checks them itself.
	member := r.With(rt.tenantChain()...)
	audited := member.With(rt.recorder.InTx)
	rs.Member = audited.With(httpx.RequireJSON)
	rs.Admin = audited.With(auth.RequireRole(auth.RoleAdmin), httpx.RequireJSON)

	rt.auth.Routes(rs)
	rt.tenant.Routes(rs)
	rt.events.Routes(rs)
	rt.endpoints.Routes(rs)
	rt.flagEval.Routes(rs)
	rt.flagAdmin.Routes(rs)

	rt.plans.Routes(rs)
	usage := rs
	usage.Member = member
	rt.metering.Routes(usage, rt.idem)
	rt.invoices.Routes(rs)
	// Payments commit their own steps around calls to Stripe: audited after the handler.
	pay := rs
	pay.Admin = member.With(rt.recorder.After, auth.RequireRole(auth.RoleAdmin), httpx.RequireJSON)
	rt.payments.Routes(pay, rt.idem)
	rt.audit.Routes(rs)
	rt.deletion.Routes(rs)
	rt.exports.Routes(rs)

	// OFREP, for OpenFeature SDKs: tenant credentials, as on the tenant routes. It answers
	// in OFREP's own shapes.
	ofrep := chi.NewRouter()
	r.Mount("/ofrep/v1", ofrep)
	rt.flagEval.OFREPRoutes(ofrep.With(rt.tenantChain()...))

	m := chi.NewRouter()
	m.Use(httpx.WithRequestID)
	m.Handle("/metrics", metricsHandler)
	return r, m
}

// underV1 applies mw to the requests under /v1 only.
func underV1(mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		checked := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Path; p == "/v1" || strings.HasPrefix(p, "/v1/") {
				checked.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// readyz answers 200 while PostgreSQL answers and the service is not draining. Redis is
// reported but does not fail readiness: the service runs on without it.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "redis": "ok"}
	status, code := "ok", http.StatusOK
	if err := a.DB.Ping(ctx); err != nil {
		checks["postgres"] = "unreachable"
		status, code = "unavailable", http.StatusServiceUnavailable
	}
	if err := a.Redis.Ping(ctx).Err(); err != nil {
		checks["redis"] = "unreachable"
	}
	if a.draining.Load() {
		status, code = "draining", http.StatusServiceUnavailable
	}
	httpx.JSON(w, code, map[string]any{"status": status, "checks": checks})
}

// rateLimit limits tenant requests by their tenant's, API key's and route class's limits, in
// one Redis call, unless RATE_LIMIT_ENABLED is false.
func (rt routes) rateLimit(next http.Handler) http.Handler {
	if !rt.app.Config.RateLimitEnabled {
		return next
	}
	return ratelimit.Middleware(rt.app.Limiter, rt.limits.Limits)(next)
}

// authPolicy names each client address's budget (AUTH_RATE_LIMIT_PER_MINUTE) of requests
// that need no valid credential: every request to a route that works without one, and every
// failed authentication.
const authPolicy = "auth"

// perIP limits unauthenticated routes per client address.
func (rt routes) perIP(policy string, perMinute int) func(http.Handler) http.Handler {
	if !rt.app.Config.RateLimitEnabled {
		return func(next http.Handler) http.Handler { return next }
	}
	return ratelimit.PerIP(rt.app.Limiter, policy, perMinute, httpx.ClientIP{Trusted: rt.app.Config.TrustedProxies}.Of)
}

// authFailures is the "auth" budget of the client addresses, for the Authenticator to
// charge failed authentications to; nil (unbounded) when rate limiting is off.
func (a *App) authFailures() auth.FailureBudget {
	if !a.Config.RateLimitEnabled {
		return nil
	}
	return ratelimit.AddrBudget{
		Limiter: a.Limiter, Policy: authPolicy, PerMinute: a.Config.AuthRatePerMinute,
		ClientIP: httpx.ClientIP{Trusted: a.Config.TrustedProxies}.Of,
	}
}

// tenantChain is the way of every tenant request: authentication, a tenant role, the
// tenant's status, rate limits, the api_requests count and quota, one flag snapshot. The
// tenant routes and OFREP share it, so neither can drift from the other.
func (rt routes) tenantChain() []func(http.Handler) http.Handler {
	a := rt.app
	return []func(http.Handler) http.Handler{
		rt.authn.Authenticate, auth.RequireRole(auth.RoleMember), a.Directory.RequireActive, rt.rateLimit, a.Requests.Count, a.Flags.Middleware,
	}
}
