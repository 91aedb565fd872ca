package tenantlimits_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/ratelimit"
	"github.com/saasbase/saasbase/internal/tenant"
	"github.com/saasbase/saasbase/internal/tenantlimits"
)

type fakePlans struct {
	limit atomic.Pointer[auth.RateLimit]
	gets  atomic.Int64
	err   error
}

func (f *fakePlans) Get(_ context.Context, code string) (plans.Plan, error) {
	f.gets.Add(1)
	if f.err != nil {
		return plans.Plan{}, f.err
	}
	return plans.Plan{Code: code, RateLimit: *f.limit.Load()}, nil
}

func TestResolver(t *testing.T) {
	plans := &fakePlans{}
	plans.limit.Store(&auth.RateLimit{RequestsPerSecond: 10, Burst: 20, MaxConcurrent: 4})
	clk := clock.NewFixed(time.Now())
	rs := tenantlimits.New(plans, tenantlimits.Options{Clock: clk, PlanTTL: time.Hour})
	tn := tenant.Tenant{ID: uuid.New(), Plan: "pro"}
	user := auth.Principal{Kind: auth.KindUser, TenantID: tn.ID, ID: uuid.New()}
	r := httptest.NewRequest("GET", "/v1/projects", nil)

	limits, err := rs.Resolve(r, tn, user)
	if err != nil {
		t.Fatal(err)
	}
	want := ratelimit.Limit{Scope: ratelimit.Tenant(tn.ID), Policy: "tenant", Rate: 10, Burst: 20, MaxConcurrent: 4}
	if len(limits) != 1 || limits[0] != want {
		t.Fatalf("user's limits %+v, want [%+v]", limits, want)
	}

	t.Run("the plan is cached at most 500ms", func(t *testing.T) {
		plans.limit.Store(&auth.RateLimit{RequestsPerSecond: 1, Burst: 1})
		clk.Advance(499 * time.Millisecond)
		if limits, _ := rs.Resolve(r, tn, user); limits[0].Rate != 10 {
			t.Fatalf("plan re-read within its TTL: %+v", limits[0])
		}
		clk.Advance(time.Millisecond)
		if limits, _ := rs.Resolve(r, tn, user); limits[0].Rate != 1 {
			t.Fatalf("plan change not seen after 500ms: %+v", limits[0])
		}
		plans.limit.Store(&auth.RateLimit{RequestsPerSecond: 2, Burst: 2})
		rs.Invalidate("pro")
		if limits, _ := rs.Resolve(r, tn, user); limits[0].Rate != 2 {
			t.Fatalf("plan change not seen after Invalidate: %+v", limits[0])
		}
	})

	t.Run("an override wins, without reading the plan", func(t *testing.T) {
		gets := plans.gets.Load()
		tn := tn
		tn.RateLimit = &auth.RateLimit{RequestsPerSecond: 50, Burst: 60}
		limits, _ := rs.Resolve(r, tn, user)
		if limits[0].Rate != 50 || limits[0].Burst != 60 || plans.gets.Load() != gets {
			t.Fatalf("override: %+v", limits[0])
		}
	})

	t.Run("an API key's limit is clamped and added", func(t *testing.T) {
		tn := tn
		tn.RateLimit = &auth.RateLimit{RequestsPerSecond: 5, Burst: 10, MaxConcurrent: 3}
		key := auth.Principal{Kind: auth.KindAPIKey, TenantID: tn.ID, ID: uuid.New(),
			KeyLimit: &auth.RateLimit{RequestsPerSecond: 50, Burst: 4}}
		limits, _ := rs.Resolve(r, tn, key)
		want := ratelimit.Limit{Scope: ratelimit.Tenant(tn.ID), Policy: "key", ID: key.ID.String(), Rate: 5, Burst: 4}
		if len(limits) != 2 || limits[1] != want {
			t.Fatalf("key's limits %+v, want the tenant's and %+v", limits, want)
		}
	})

	t.Run("route classes are in the tenant's scope", func(t *testing.T) {
		rs := tenantlimits.New(plans, tenantlimits.Options{
			Routes: func(r *http.Request, tl auth.RateLimit) []ratelimit.Limit {
				if r.Method == "GET" {
					return nil
				}
				return []ratelimit.Limit{{Policy: "writes", Rate: tl.RequestsPerSecond / 2, Burst: tl.Burst / 2, Failure: ratelimit.FailClosed}}
			},
		})
		limits, _ := rs.Resolve(httptest.NewRequest("POST", "/v1/projects", nil), tn, user)
		if len(limits) != 2 || limits[1].Policy != "writes" || limits[1].Scope != ratelimit.Tenant(tn.ID) {
			t.Fatalf("limits %+v", limits)
		}
	})

	t.Run("a plan that cannot be read is our failure", func(t *testing.T) {
		rs := tenantlimits.New(&fakePlans{err: errs.NotFoundf("no plan")}, tenantlimits.Options{})
		_, err := rs.Resolve(r, tn, user)
		if err == nil || errs.KindOf(err) != errs.Internal {
			t.Fatalf("got %v (kind %v), want an internal error", err, errs.KindOf(err))
		}
	})

	t.Run("platform operators are not limited", func(t *testing.T) {
		r := r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Kind: auth.KindPlatform}))
		if limits, err := rs.Limits(r); err != nil || limits != nil {
			t.Fatalf("got %v, %v", limits, err)
		}
	})
}
