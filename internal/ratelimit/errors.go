package ratelimit

import (
	"net/http"
	"strconv"
	"time"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

var (
	_ httpx.HeaderSetter = (*DeniedError)(nil)
	_ httpx.PolicyNamer  = (*DeniedError)(nil)
)

// DeniedError answers a denied request. httpx.Error writes it as 429 rate_limited, with
// Retry-After (whole seconds, at least 1) and the denying policy in the problem's policy.
type DeniedError struct {
	Policy     string
	RetryAfter time.Duration
	Degraded   bool // denied because Redis could not be asked and the limit fails closed

	kind *errs.Error
}

func newDeniedError(policy string, retryAfter time.Duration, degraded bool) *DeniedError {
	detail := "rate limit " + strconv.Quote(policy) + " exceeded; retry after the Retry-After seconds"
	if degraded {
		detail = "rate limit " + strconv.Quote(policy) + " cannot be checked right now; retry after the Retry-After seconds"
	}
	return &DeniedError{
		Policy: policy, RetryAfter: retryAfter, Degraded: degraded,
		kind: &errs.Error{Kind: errs.RateLimited, Code: "rate_limited", Detail: detail},
	}
}

func (e *DeniedError) Error() string { return e.kind.Error() }

// Unwrap gives the error its kind and code, which httpx maps to the status.
func (e *DeniedError) Unwrap() error { return e.kind }

// SetHeaders sets Retry-After (httpx.HeaderSetter).
func (e *DeniedError) SetHeaders(h http.Header) {
	h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(e.RetryAfter), 1), 10))
}

// PolicyName names the policy that denied (httpx.PolicyNamer).
func (e *DeniedError) PolicyName() string { return e.Policy }
