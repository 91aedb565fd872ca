// Package server assembles the service: it opens the connections, builds every module's
// services and handlers, and lays out the router and its middleware.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	otelpropagation "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

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
	"github.com/saasbase/saasbase/internal/mail"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/config"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
	"github.com/saasbase/saasbase/internal/platform/tracing"
	"github.com/saasbase/saasbase/internal/purge"
	"github.com/saasbase/saasbase/internal/ratelimit"
	"github.com/saasbase/saasbase/internal/retention"
	"github.com/saasbase/saasbase/internal/tenant"
	"github.com/saasbase/saasbase/internal/tenantlimits"
)

// App is the assembled service.
type App struct {
	Config   config.Config
	Logger   *slog.Logger
	Clock    clock.Clock
	DB       *postgres.DB
	Redis    goredis.UniversalClient // one server, or a cluster (openRedis)
	Registry *prometheus.Registry
	Tracing  *tracing.Tracing // nil: tracing is off

	Keys        *auth.Keys
	Sessions    *auth.Sessions
	Passwords   *auth.Passwords
	Directory   *tenant.Directory
	Idempotency *idempotency.Store
	Payments    *payments.Payments
	Customers   *payments.Customers
	Usage       *metering.Usage
	Requests    *metering.RequestCounter
	Invoices    *invoicing.Invoices
	Limiter     *ratelimit.Limiter

	// Billing's jobs (RunBackground runs them).
	Completer *payments.Completer
	Collector *invoicing.Collector
	Reporter  *invoicing.Reporter

	// The event pipeline: the relay publishes the outbox to Transport, Consumers apply the
	// events (webhook fan-out among them), Deliverer sends webhook deliveries.
	Transport    events.Transport
	Relay        *events.Relay
	Consumers    *events.Consumers
	EventsReaper *events.Reaper
	// A tenant's lifecycle: the purge of deleted tenants after their grace period.
	Purger  *purge.Purger
	Exports *export.Exports
	// Retention deletes what the service no longer needs, table by table (docs/lifecycle.md).
	Retention *retention.Reaper
	Deliverer *webhook.Deliverer
	Mailer    *mail.Mailer  // sends invitations, password resets, email verifications
	kafka     *events.Kafka // nil with the in-process transport

	// Flags evaluates feature flags for the service's own code; FlagRefresher keeps its
	// snapshot current and must be started (Start) to serve anything but defaults.
	Flags         *flags.Client
	FlagRefresher *flags.Refresher

	handler  http.Handler
	metrics  http.Handler
	draining atomic.Bool
}

// Options are the parts a caller may supply instead of the defaults.
type Options struct {
	Logger    *slog.Logger
	Clock     clock.Clock
	Passwords *auth.PasswordParams // argon2id cost; tests lower it
	// Tracing, if set, traces requests, statements, Redis commands, Stripe calls and the
	// event pipeline (tracing.New reads OTEL_*). The caller shuts it down after Close.
	Tracing *tracing.Tracing
}

// propagation is how long a replica may go on answering from what it read before another
// replica changed it (a tenant's status, a user's role): the caches of every request hold
// entries that long, and the replica that makes a change drops its entry at once.
const propagation = 500 * time.Millisecond

// New connects to PostgreSQL and Redis and builds the service.
func New(ctx context.Context, cfg config.Config, opt Options) (*App, error) {
	a := &App{Config: cfg, Logger: opt.Logger, Clock: opt.Clock, Registry: prometheus.NewRegistry(), Tracing: opt.Tracing}
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	var dbSpans trace.TracerProvider
	if a.Tracing != nil {
		a.Logger = slog.New(tracing.LogHandler(a.Logger.Handler())) // trace_id and span_id on log lines
		dbSpans = a.Tracing.Children()
	}
	if a.Clock == nil {
		a.Clock = clock.System{}
	}
	params := auth.DefaultPasswordParams
	if opt.Passwords != nil {
		params = *opt.Passwords
	}
	a.Passwords = auth.NewPasswords(params, cfg.PasswordConcurrency)
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	runtimeURL, err := postgres.RuntimeURL(cfg.DatabaseURL, cfg.AppDatabaseURL)
	if err != nil {
		return nil, err
	}
	if a.DB, err = postgres.Open(ctx, runtimeURL, postgres.Options{MaxConns: cfg.DatabaseMaxConns, StatementTimeout: cfg.StatementTimeout, Spans: dbSpans}); err != nil {
		return nil, err
	}
	a.Registry.MustRegister(postgres.NewPoolCollector(a.DB))
	if a.Redis, err = openRedis(cfg.RedisURL); err != nil {
		a.DB.Close()
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if a.Tracing != nil {
		// Neither the command's arguments (keys name tenants) nor the caller's line, which
		// costs a stack walk per command.
		if err := redisotel.InstrumentTracing(a.Redis, redisotel.WithTracerProvider(a.Tracing.Children()),
			redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			a.Close()
			return nil, fmt.Errorf("redis tracing: %w", err)
		}
	}

	previous, err := auth.ParsePublicKeys(cfg.JWTPreviousKeys)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("JWT_PREVIOUS_PUBLIC_KEYS: %w", err)
	}
	if a.Keys, err = auth.NewKeys(cfg.JWTSigningKey, previous, cfg.JWTMaxTokenTTL); err != nil {
		a.Close()
		return nil, fmt.Errorf("JWT_SIGNING_KEY: %w", err)
	}

	outbox := &events.Outbox{Clock: a.Clock}
	// One box seals what the service must read back: webhook signing secrets, mail tokens.
	secrets, err := secretbox.New(cfg.WebhookSecretKey)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("WEBHOOK_SECRET_KEY: %w", err)
	}
	tenants := &tenant.Tenants{DB: a.DB, Outbox: outbox}
	a.Directory = tenant.NewDirectory(tenants, a.Clock, propagation)
	tenants.Directory = a.Directory
	apiKeys := &auth.APIKeys{DB: a.DB, Clock: a.Clock, Live: cfg.Production(), CheckLimit: ratelimit.CheckRateLimit}
	users := &tenant.Users{DB: a.DB, Outbox: outbox, APIKeys: apiKeys, Clock: a.Clock, Passwords: a.Passwords, Plan: "free"}
	roles := tenant.NewRoles(users, a.Clock, propagation)
	users.Roles = roles
	a.Sessions = &auth.Sessions{
		DB: a.DB, Keys: a.Keys, Roles: users, Clock: a.Clock,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL,
	}
	users.Sessions = a.Sessions
	invitations, recovery, err := a.teams(cfg, outbox, secrets)
	if err != nil {
		a.Close()
		return nil, err
	}
	users.Verifications, users.VerifiedPlans = recovery, cfg.EmailVerificationRequiredPlans

	a.Flags = &flags.Client{Tenant: flagTenant}
	flagStore := &flags.Store{DB: a.DB}
	a.FlagRefresher = &flags.Refresher{
		Client: a.Flags, Source: flagStore, Redis: a.Redis,
		Channel: flags.Channel(cfg.RedisKeyPrefix), Poll: cfg.FlagsPollInterval, Logger: a.Logger,
	}
	flagAdmin := &flags.Admin{DB: a.DB, Events: outbox, Clock: a.Clock, Propagator: a.FlagRefresher}

	a.Idempotency = &idempotency.Store{DB: a.DB, Clock: a.Clock, TTL: 24 * time.Hour, LockTimeout: time.Minute}
	// Billing, in the order its packages depend on each other: payments and plans, then
	// metering, then invoicing (docs/architecture.md).
	a.Payments = &payments.Payments{DB: a.DB, Outbox: outbox, Clock: a.Clock}
	if cfg.StripeSecretKey != "" {
		a.Payments.Stripe = payments.NewStripe(cfg.StripeSecretKey, cfg.StripeAPIURL, a.stripeTransport())
	}
	a.Customers = &payments.Customers{DB: a.DB, Stripe: a.Payments.Stripe, Clock: a.Clock}
	a.Completer = &payments.Completer{Payments: a.Payments, Keys: a.Idempotency, Logger: a.Logger}
	meters := metering.NewMeters(a.DB, outbox, a.Clock)
	catalog := &plans.Plans{DB: a.DB, Outbox: outbox, Meters: meters}
	payers := tenantInfo{a.Directory}
	periods := invoicing.NewPeriods(a.DB, payers, a.Clock)
	a.Usage = &metering.Usage{DB: a.DB, Meters: meters, Periods: periods, Clock: a.Clock}
	quotas := &metering.Quotas{DB: a.DB, Outbox: outbox, Plans: catalog, Usage: a.Usage, Periods: periods}
	a.Requests = &metering.RequestCounter{DB: a.DB, Quotas: quotas, Clock: a.Clock, Logger: a.Logger}
	a.Invoices = &invoicing.Invoices{
		DB: a.DB, Outbox: outbox, Clock: a.Clock, Plans: catalog, Usage: a.Usage,
		Periods: periods, Grace: cfg.BillingGrace, Metrics: invoicing.NewMetrics(a.Registry), Logger: a.Logger,
	}
	a.Collector = &invoicing.Collector{
		Invoices: a.Invoices, Tenants: payers, Payments: a.Payments, Customers: a.Customers,
		Keys: a.Idempotency, Logger: a.Logger,
	}
	a.Reporter = &invoicing.Reporter{DB: a.DB, Clock: a.Clock, Stripe: a.Payments.Stripe, Customers: a.Customers, Logger: a.Logger}
	if a.Limiter, err = ratelimit.New(a.Redis, ratelimit.Options{Prefix: cfg.RedisKeyPrefix, Clock: a.Clock, Registerer: a.Registry}); err != nil {
		a.Close()
		return nil, err
	}
	limits := tenantlimits.New(catalog, tenantlimits.Options{Clock: a.Clock, Routes: paymentsFailClosed, Logger: a.Logger})
	catalog.OnChange = limits.Invalidate

	endpoints, err := a.events(cfg, outbox, secrets)
	if err != nil {
		a.Close()
		return nil, err
	}

	auditLog := &audit.Log{DB: a.DB, Clock: a.Clock}
	a.Purger = &purge.Purger{
		DB: a.DB, Redis: a.Redis, RedisPrefix: cfg.RedisKeyPrefix, Outbox: outbox, Clock: a.Clock,
		Logger: a.Logger, Metrics: purge.NewMetrics(a.Registry),
	}
	if a.Payments.Stripe != nil {
		a.Purger.Stripe = a.Payments.Stripe
	}
	a.Retention = &retention.Reaper{DB: a.DB, Clock: a.Clock, Policies: retention.Policies(cfg.AuditRetention), Metrics: retention.NewMetrics(a.Registry)}
	a.Exports = &export.Exports{DB: a.DB, Clock: a.Clock, Logger: a.Logger, TmpDir: cfg.ExportTmpDir}
	deletion := &tenant.Deletion{Tenants: tenants, Clock: a.Clock, Grace: cfg.TenantDeletionGrace, PurgeNow: a.Purger.Start}
	r := routes{
		app:      a,
		audit:    &audit.Handler{Log: auditLog},
		deletion: &tenant.DeletionHandler{Deletion: deletion},
		exports:  &export.Handler{Exports: a.Exports},
		recorder: &audit.Recorder{Log: auditLog, ClientIP: httpx.ClientIP{Trusted: cfg.TrustedProxies}.Of},
		limits:   limits,
		authn: &auth.Authenticator{
			Keys: a.Keys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			DB: a.DB, Roles: roles, Clock: a.Clock, Live: cfg.Production(), Failures: a.authFailures(),
		},
		auth: &auth.Handler{
			Grants:  &auth.Grants{DB: a.DB, Logins: users, Sessions: a.Sessions, Passwords: a.Passwords},
			APIKeys: apiKeys,
			Keys:    a.Keys,
		},
		tenant: &tenant.Handler{
			Tenants: tenants, Users: users, Projects: &tenant.Projects{DB: a.DB, Outbox: outbox, Clock: a.Clock, Flags: a.Flags},
			Invitations: invitations, Recovery: recovery,
		},
		plans:     &plans.Handler{Plans: catalog},
		metering:  &metering.Handler{Usage: a.Usage, Meters: meters, Quotas: quotas},
		invoices:  &invoicing.Handler{Invoices: a.Invoices},
		payments:  &payments.Handler{Payments: a.Payments, WebhookSecret: cfg.StripeWebhookSecret},
		events:    &events.Handler{Log: &events.Log{DB: a.DB}},
		endpoints: &webhook.Handler{Endpoints: endpoints},
		idem:      &idempotency.Middleware{Store: a.Idempotency},
		flagEval:  &flags.Handler{Client: a.Flags},
		flagAdmin: &flags.AdminHandler{Store: flagStore, Admin: flagAdmin},
		metrics:   httpx.NewMetrics(a.Registry),
	}
	a.handler, a.metrics = r.build()
	return a, nil
}

// Handler is the service's HTTP handler (with /metrics unless MetricsAddr moves it).
func (a *App) Handler() http.Handler { return a.handler }

// MetricsHandler serves /metrics alone, for a separate listen address.
func (a *App) MetricsHandler() http.Handler { return a.metrics }

// Drain makes /readyz answer 503, so load balancers stop sending new requests.
func (a *App) Drain() { a.draining.Store(true) }

// Close releases the connections.
func (a *App) Close() {
	a.FlagRefresher.Stop()
	if a.kafka != nil {
		a.kafka.Close()
	}
	if a.Redis != nil {
		a.Redis.Close()
	}
	a.DB.Close()
}

// stripeTransport traces calls to Stripe as client spans of the request, without sending
// Stripe our trace context (no propagator); nil, the default transport, with tracing off.
func (a *App) stripeTransport() http.RoundTripper {
	if a.Tracing == nil {
		return nil
	}
	return otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(a.Tracing.Children()),
		otelhttp.WithPropagators(otelpropagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "stripe " + r.Method }))
}

// tenantInfo answers billing's questions about tenants from the tenant directory.
type tenantInfo struct{ dir *tenant.Directory }

func (t tenantInfo) BillingInfo(ctx context.Context, id uuid.UUID) (invoicing.TenantInfo, error) {
	tt, err := t.dir.Get(ctx, id)
	if err != nil {
		return invoicing.TenantInfo{}, err
	}
	info := invoicing.TenantInfo{ID: tt.ID, Plan: tt.Plan, Timezone: tt.Timezone, CreatedAt: tt.CreatedAt}
	if tt.DefaultPaymentMethod != nil {
		info.DefaultPaymentMethod = *tt.DefaultPaymentMethod
	}
	return info, nil
}

// flagTenant is the calling tenant as flag evaluation sees it: the record RequireActive put
// in the context, never anything the caller sent.
func flagTenant(ctx context.Context) (flags.Tenant, bool) {
	t, ok := tenant.FromContext(ctx)
	return flags.Tenant{ID: t.ID, Plan: t.Plan, CreatedAt: t.CreatedAt}, ok
}

// paymentsFailClosed adds a route class to payment requests: the tenant's limit again, but
// denied rather than decided locally while Redis is down, so an outage can never multiply
// the rate of charges by the number of replicas.
func paymentsFailClosed(r *http.Request, tenantLimit auth.RateLimit) []ratelimit.Limit {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/payments") {
		return nil
	}
	l := ratelimit.FromRateLimit("", "payments", "", auth.RateLimit{RequestsPerSecond: tenantLimit.RequestsPerSecond, Burst: tenantLimit.Burst})
	l.Failure = ratelimit.FailClosed
	return []ratelimit.Limit{l}
}
