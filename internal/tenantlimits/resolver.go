// Package tenantlimits answers the limits of an authenticated tenant request, for the rate
// limit middleware: the tenant's (the operator's override, else the plan's), the API key's
// clamped to the tenant's, and any route class's. It is the glue between the generic limiter
// and the domain (tenants, plans), so that internal/ratelimit imports no domain module.
package tenantlimits

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/platform/cache"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/ratelimit"
	"github.com/saasbase/saasbase/internal/tenant"
)

// Policy names of the limits the Resolver answers.
const (
	PolicyTenant = "tenant"
	PolicyKey    = "key"
)

// Plans is where the Resolver reads a plan's limit: *plans.Plans.
type Plans interface {
	Get(ctx context.Context, code string) (plans.Plan, error)
}

// Resolver answers the limits of an authenticated tenant request: the tenant's, the API
// key's clamped to the tenant's, and any route class's. It caches a plan's limit for at most
// PlanTTL (≤ 500 ms), which, added to the tenant directory's own 500 ms, holds a changed plan
// or override on every replica within a second.
type Resolver struct {
	opts  Options
	plans *cache.Cache[string, auth.RateLimit] // by plan code
	// The limits of a tenant's own requests, by the tenant and its limit: what every request
	// of a user answers, built once rather than per request (its scope's text, the slice).
	// They depend on nothing else, so an entry is never stale; it lives tenantTTL for memory.
	tenants *cache.Cache[tenantKey, []ratelimit.Limit]
}

type tenantKey struct {
	id    uuid.UUID
	limit auth.RateLimit
}

// tenantTTL is how long a tenant's limits are kept after they were built.
const tenantTTL = time.Minute

// Options tune a Resolver.
type Options struct {
	PlanTTL time.Duration // how long a plan's limit is cached, at most 500ms (500ms)
	Clock   clock.Clock   // (clock.System)
	// Routes answers a request's route-class limits (say, "writes" on mutations, failing
	// closed on payments); their Scope is set to the tenant's. Nil: none.
	Routes func(r *http.Request, tenantLimit auth.RateLimit) []ratelimit.Limit
	Logger *slog.Logger // where an API key's unusable limit is reported (slog.Default())
}

const maxPlanTTL = 500 * time.Millisecond

// New returns a Resolver reading plans from plans.
func New(plans Plans, opts Options) *Resolver {
	if opts.PlanTTL <= 0 || opts.PlanTTL > maxPlanTTL {
		opts.PlanTTL = maxPlanTTL
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	limit := func(ctx context.Context, code string) (auth.RateLimit, error) {
		plan, err := plans.Get(ctx, code)
		return plan.RateLimit, err
	}
	own := func(_ context.Context, k tenantKey) ([]ratelimit.Limit, error) {
		// Room for a key's limit and a route class's, appended to a copy (Resolve).
		return []ratelimit.Limit{ratelimit.FromRateLimit(ratelimit.Tenant(k.id), PolicyTenant, "", k.limit)}, nil
	}
	return &Resolver{opts: opts, plans: cache.New(opts.Clock, opts.PlanTTL, limit), tenants: cache.New(opts.Clock, tenantTTL, own)}
}

// Limits is the Middleware resolver of the tenant routes, behind authentication and
// tenant.RequireActive. Platform operators are not limited.
func (rs *Resolver) Limits(r *http.Request) ([]ratelimit.Limit, error) {
	p := auth.MustFromContext(r.Context())
	if p.Kind == auth.KindPlatform {
		return nil, nil
	}
	t, ok := tenant.FromContext(r.Context())
	if !ok {
		panic("tenantlimits: no tenant in context: the rate limit middleware must follow tenant.RequireActive")
	}
	return rs.Resolve(r, t, p)
}

// Resolve answers the limits of a request by principal p of tenant t.
func (rs *Resolver) Resolve(r *http.Request, t tenant.Tenant, p auth.Principal) ([]ratelimit.Limit, error) {
	var plan auth.RateLimit
	if t.RateLimit == nil {
		var err error
		if plan, err = rs.plans.Get(r.Context(), t.Plan); err != nil {
			// Whatever the store said, a tenant whose plan cannot be read is our failure.
			return nil, errs.Wrap(err, errs.Internal, "internal", "the tenant's plan could not be read")
		}
	}
	tl := ratelimit.TenantLimit(plan, t.RateLimit)
	own, _ := rs.tenants.Get(r.Context(), tenantKey{t.ID, tl}) // never fails
	var routes []ratelimit.Limit
	if rs.opts.Routes != nil {
		routes = rs.opts.Routes(r, tl)
	}
	if len(routes) == 0 && (p.Kind != auth.KindAPIKey || p.KeyLimit == nil) {
		return own, nil // shared: the limiter only reads a request's limits
	}
	scope := own[0].Scope
	limits := make([]ratelimit.Limit, 0, 3)
	limits = append(limits, own[0])
	if p.Kind == auth.KindAPIKey && p.KeyLimit != nil {
		kl := ratelimit.KeyLimit(*p.KeyLimit, tl)
		if err := ratelimit.CheckRateLimit("rate_limit", kl); err != nil {
			// A key stored before its limit was checked at creation: it spends from its
			// tenant's budget alone, rather than failing every request it makes.
			rs.opts.Logger.WarnContext(r.Context(), "API key's rate limit is unusable; only the tenant's applies",
				slog.String("api_key_id", p.ID.String()), slog.Any("error", err))
		} else {
			limits = append(limits, ratelimit.FromRateLimit(scope, PolicyKey, p.ID.String(), kl))
		}
	}
	for _, l := range routes {
		l.Scope = scope
		limits = append(limits, l)
	}
	return limits, nil
}

// Invalidate drops a plan's cached limit, for the replica that changed it (plan.changed).
func (rs *Resolver) Invalidate(code string) { rs.plans.Invalidate(code) }
