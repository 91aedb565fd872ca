package server

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/billing/invoicing"
	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/billing/payments"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/events/webhook"
	"github.com/saasbase/saasbase/internal/flags"
	"github.com/saasbase/saasbase/internal/idempotency"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/ratelimit"
	"github.com/saasbase/saasbase/internal/ratelimit/tenantlimits"
	"github.com/saasbase/saasbase/internal/tenant"
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
}

// h adapts an error-returning handler.
func h(f func(http.ResponseWriter, *http.Request) error) http.Handler { return httpx.HandlerFunc(f) }

// build lays out the router. The order of middleware is the request's way through the
// service: request id, logging and metrics, recovery, then per group authentication,
// tenant status, and the handler.
func (rt routes) build() (main, metricsOnly http.Handler) {
	a := rt.app
	metricsHandler := promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{})

	r := chi.NewRouter()
	r.Use(httpx.WithRequestID, httpx.Observe(a.Logger, rt.metrics, httpx.ClientIP{Trusted: a.Config.TrustedProxies}), httpx.Recover)
	if len(a.Config.CORSAllowedOrigins) > 0 {
		r.Use(httpx.CORS(a.Config.CORSAllowedOrigins))
	}
	noRoute := httpx.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return errs.E(errs.NotFound, "not_found", "no route %s %s", r.Method, r.URL.Path)
	})
	r.NotFound(noRoute.ServeHTTP)
	r.MethodNotAllowed(noRoute.ServeHTTP)

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
	r.Get("/.well-known/jwks.json", rt.auth.JWKS)

	r.Route("/v1", func(r chi.Router) {
		// Signup and the token endpoint share one budget per client address.
		perIP := rt.perIP("auth", a.Config.AuthRatePerMinute)
		r.With(perIP).Method(http.MethodPost, "/signup", h(rt.tenant.Signup))
		r.With(perIP).Method(http.MethodPost, "/auth/token", h(rt.auth.Token))
		r.Method(http.MethodPost, "/auth/revoke", h(rt.auth.Revoke))
		r.Method(http.MethodGet, "/plans", h(rt.plans.List))
		r.Method(http.MethodPost, "/webhooks/stripe", h(rt.payments.StripeWebhook))

		r.Group(func(r chi.Router) {
			r.Use(rt.authn.Authenticate)

			// Operator routes: platform_admin tokens only.
			r.Route("/admin", func(r chi.Router) {
				r.Use(auth.RequirePlatformAdmin)
				r.Method(http.MethodGet, "/tenants", h(rt.tenant.AdminListTenants))
				r.Method(http.MethodGet, "/tenants/{id}", h(rt.tenant.AdminGetTenant))
				r.Method(http.MethodPatch, "/tenants/{id}", h(rt.tenant.AdminUpdateTenant))
				r.Method(http.MethodPut, "/plans/{code}", h(rt.plans.Put))
				r.Method(http.MethodGet, "/flags", h(rt.flagAdmin.ListFlags))
				r.Method(http.MethodGet, "/flags/{key}", h(rt.flagAdmin.GetFlag))
				r.Method(http.MethodPut, "/flags/{key}", h(rt.flagAdmin.PutFlag))
				r.Method(http.MethodDelete, "/flags/{key}", h(rt.flagAdmin.DeleteFlag))
				r.Method(http.MethodGet, "/flags/{key}/overrides", h(rt.flagAdmin.ListOverrides))
				r.Method(http.MethodPut, "/flags/{key}/overrides/{tenant_id}", h(rt.flagAdmin.PutOverride))
				r.Method(http.MethodDelete, "/flags/{key}/overrides/{tenant_id}", h(rt.flagAdmin.DeleteOverride))
				r.Method(http.MethodGet, "/flags/{key}/audit", h(rt.flagAdmin.ListAudit))
				r.Method(http.MethodPut, "/meters/{key}", h(rt.metering.PutMeter))
			})

			// Tenant routes. POST and PATCH take Idempotency-Key (idem), except the answers that
			// reveal a secret, which are never stored.
			r.Group(func(r chi.Router) {
				r.Use(rt.tenantChain()...)
				idem := rt.idem.Handler(idempotency.Options{})

				r.Method(http.MethodGet, "/me", h(rt.tenant.Me))
				r.With(idem).Method(http.MethodPost, "/me/password", h(rt.tenant.ChangePassword))
				r.Method(http.MethodGet, "/tenant", h(rt.tenant.GetTenant))
				r.Method(http.MethodGet, "/events", h(rt.events.List))
				r.Method(http.MethodGet, "/flags", h(rt.flagEval.List))
				r.Method(http.MethodGet, "/flags/{key}", h(rt.flagEval.Get))

				r.Method(http.MethodGet, "/projects", h(rt.tenant.ListProjects))
				r.With(idem).Method(http.MethodPost, "/projects", h(rt.tenant.CreateProject))
				r.Method(http.MethodGet, "/projects/{id}", h(rt.tenant.GetProject))
				r.With(idem).Method(http.MethodPatch, "/projects/{id}", h(rt.tenant.UpdateProject))
				r.Method(http.MethodDelete, "/projects/{id}", h(rt.tenant.DeleteProject))

				r.Method(http.MethodGet, "/meters", h(rt.metering.ListMeters))
				r.Method(http.MethodGet, "/meters/{key}/usage", h(rt.metering.Query))
				r.With(rt.idem.Handler(idempotency.Options{MaxBody: metering.MaxUsageBody})).
					Method(http.MethodPost, "/usage/events", h(rt.metering.Ingest))

				r.Method(http.MethodGet, "/entitlements", h(rt.metering.Entitlements))
				r.Method(http.MethodGet, "/invoices/upcoming", h(rt.invoices.Upcoming))
				r.Method(http.MethodGet, "/invoices", h(rt.invoices.List))
				r.Method(http.MethodGet, "/invoices/{id}", h(rt.invoices.Get))

				r.Method(http.MethodGet, "/payments", h(rt.payments.List))
				r.Method(http.MethodGet, "/payments/{id}", h(rt.payments.Get))

				r.Group(func(r chi.Router) {
					r.Use(auth.RequireRole(auth.RoleAdmin))
					r.With(idem).Method(http.MethodPatch, "/tenant", h(rt.tenant.UpdateTenant))
					r.Method(http.MethodGet, "/users", h(rt.tenant.ListUsers))
					r.With(idem).Method(http.MethodPost, "/users", h(rt.tenant.CreateUser))
					r.Method(http.MethodGet, "/users/{id}", h(rt.tenant.GetUser))
					r.With(idem).Method(http.MethodPatch, "/users/{id}", h(rt.tenant.UpdateUser))
					r.Method(http.MethodDelete, "/users/{id}", h(rt.tenant.DeleteUser))
					r.Method(http.MethodGet, "/api-keys", h(rt.auth.ListAPIKeys))
					r.Method(http.MethodPost, "/api-keys", h(rt.auth.CreateAPIKey))
					r.Method(http.MethodDelete, "/api-keys/{id}", h(rt.auth.DeleteAPIKey))

					// Webhook endpoints. Creating one reveals its secret: never stored under a key.
					r.Method(http.MethodGet, "/webhook-endpoints", h(rt.endpoints.List))
					r.Method(http.MethodPost, "/webhook-endpoints", h(rt.endpoints.Create))
					r.Method(http.MethodGet, "/webhook-endpoints/{id}", h(rt.endpoints.Get))
					r.Method(http.MethodDelete, "/webhook-endpoints/{id}", h(rt.endpoints.Delete))
					r.With(idem).Method(http.MethodPost, "/webhook-endpoints/{id}/enable", h(rt.endpoints.Enable))
					r.Method(http.MethodGet, "/webhook-endpoints/{id}/deliveries", h(rt.endpoints.Deliveries))
					r.With(idem).Method(http.MethodPost, "/webhook-endpoints/{id}/deliveries/{delivery_id}/retry", h(rt.endpoints.Retry))

					// Payments call Stripe: phased keys, required, no transaction across the call.
					pay := rt.idem.Handler(idempotency.Options{Required: true, Phased: true})
					r.With(pay).Method(http.MethodPost, "/payments", h(rt.payments.Create))
					r.With(pay).Method(http.MethodPost, "/payments/{id}/refunds", h(rt.payments.Refund))
				})
			})
		})
	})

	// OFREP, for OpenFeature SDKs: tenant credentials, as on the tenant routes. It answers
	// in OFREP's own shapes.
	r.Route("/ofrep/v1", func(r chi.Router) {
		r.Use(rt.authn.Authenticate)
		r.Use(rt.tenantChain()...)
		r.Method(http.MethodPost, "/evaluate/flags", http.HandlerFunc(rt.flagEval.OFREPBulk))
		r.Method(http.MethodPost, "/evaluate/flags/{key}", http.HandlerFunc(rt.flagEval.OFREPFlag))
	})

	m := chi.NewRouter()
	m.Use(httpx.WithRequestID)
	m.Handle("/metrics", metricsHandler)
	return r, m
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

// perIP limits unauthenticated routes per client address.
func (rt routes) perIP(policy string, perMinute int) func(http.Handler) http.Handler {
	if !rt.app.Config.RateLimitEnabled {
		return func(next http.Handler) http.Handler { return next }
	}
	return ratelimit.PerIP(rt.app.Limiter, policy, perMinute, httpx.ClientIP{Trusted: rt.app.Config.TrustedProxies}.Of)
}

// tenantChain is the way of every tenant request after authentication: a tenant role, the
// tenant's status, rate limits, the api_requests count and quota, one flag snapshot. The
// tenant routes and OFREP share it, so neither can drift from the other.
func (rt routes) tenantChain() []func(http.Handler) http.Handler {
	a := rt.app
	return []func(http.Handler) http.Handler{
		auth.RequireRole(auth.RoleMember), a.Directory.RequireActive, rt.rateLimit, a.Requests.Count, a.Flags.Middleware,
	}
}
