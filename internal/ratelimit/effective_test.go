package ratelimit_test

import (
	"testing"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/ratelimit"
)

func TestTenantLimit(t *testing.T) {
	plan := auth.RateLimit{RequestsPerSecond: 10, Burst: 20, MaxConcurrent: 5}
	if got := ratelimit.TenantLimit(plan, nil); got != plan {
		t.Fatalf("without override: %+v, want the plan's", got)
	}
	override := &auth.RateLimit{RequestsPerSecond: 1, Burst: 2}
	if got := ratelimit.TenantLimit(plan, override); got != *override {
		t.Fatalf("with override: %+v, want the override", got)
	}
}

func TestKeyLimitIsClampedToTheTenants(t *testing.T) {
	tenantLimit := auth.RateLimit{RequestsPerSecond: 10, Burst: 20, MaxConcurrent: 5}
	cases := []struct{ key, want auth.RateLimit }{
		{auth.RateLimit{RequestsPerSecond: 1, Burst: 2}, auth.RateLimit{RequestsPerSecond: 1, Burst: 2}},
		{auth.RateLimit{RequestsPerSecond: 100, Burst: 200}, auth.RateLimit{RequestsPerSecond: 10, Burst: 20}},
		{auth.RateLimit{RequestsPerSecond: 100, Burst: 5}, auth.RateLimit{RequestsPerSecond: 10, Burst: 5}},
		{auth.RateLimit{RequestsPerSecond: 2, Burst: 50, MaxConcurrent: 9}, auth.RateLimit{RequestsPerSecond: 2, Burst: 20}},
	}
	for _, c := range cases {
		if got := ratelimit.KeyLimit(c.key, tenantLimit); got != c.want {
			t.Errorf("KeyLimit(%+v) = %+v, want %+v", c.key, got, c.want)
		}
	}
}
