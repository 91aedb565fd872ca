package ratelimit

import (
	"net/http"
	"net/netip"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Resolve answers the limits of a request; none means the request is not limited.
type Resolve func(r *http.Request) ([]Limit, error)

// Middleware limits each request by the limits resolve answers: every answer carries the
// RateLimit-Policy and RateLimit headers; a denied request is answered 429 rate_limited
// with Retry-After and the denying policy; an allowed one holds its in-flight slots until
// the handler returns.
func Middleware(l *Limiter, resolve Resolve) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			limits, err := resolve(r)
			if err != nil {
				httpx.Error(w, r, err)
				return
			}
			if len(limits) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			d, err := l.Allow(r.Context(), limits...)
			if err != nil {
				if r.Context().Err() != nil {
					return // the client has gone; there is nobody to answer
				}
				httpx.Error(w, r, err) // a limit misconfigured: a 500, logged
				return
			}
			d.SetHeaders(w.Header())
			if err := d.Err(); err != nil {
				httpx.Error(w, r, err)
				return
			}
			defer d.Release(r.Context())
			next.ServeHTTP(w, r)
		})
	}
}

// PerIP limits each client address (IPv6: each /64) to perMinute requests a minute, all at
// once at most, under the named policy: for the unauthenticated routes, signup and token,
// with AUTH_RATE_LIMIT_PER_MINUTE. clientIP is httpx.ClientIP{Trusted: ...}.Of, which believes
// X-Forwarded-For only from a trusted proxy. Routes sharing a policy share the budget.
func PerIP(l *Limiter, policy string, perMinute int, clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	return Middleware(l, func(r *http.Request) ([]Limit, error) {
		return []Limit{{
			Scope:  ClientAddr(clientIP(r)),
			Policy: policy,
			Rate:   float64(perMinute) / 60,
			Burst:  perMinute,
		}}, nil
	})
}
