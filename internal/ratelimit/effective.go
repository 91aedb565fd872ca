package ratelimit

import "github.com/saasbase/saasbase/internal/auth"

// TenantLimit is a tenant's effective limit: the operator's override when set, else the
// plan's.
func TenantLimit(plan auth.RateLimit, override *auth.RateLimit) auth.RateLimit {
	if override != nil {
		return *override
	}
	return plan
}

// KeyLimit is an API key's limit clamped to its tenant's, so that a key can narrow its
// tenant's budget but never widen it. Keys carry no cap on requests in flight: the tenant's
// applies to them.
func KeyLimit(key, tenantLimit auth.RateLimit) auth.RateLimit {
	return auth.RateLimit{
		RequestsPerSecond: min(key.RequestsPerSecond, tenantLimit.RequestsPerSecond),
		Burst:             min(key.Burst, tenantLimit.Burst),
	}
}
