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
// once at most, under the named policy: for the routes that work without a credential, with
// AUTH_RATE_LIMIT_PER_MINUTE. clientIP is httpx.ClientIP{Trusted: ...}.Of, which believes
// X-Forwarded-For only from a trusted proxy. Routes sharing a policy share the budget, and so
// does an AddrBudget of the same policy and numbers.
func PerIP(l *Limiter, policy string, perMinute int, clientIP func(*http.Request) netip.Addr) func(http.Handler) http.Handler {
	return Middleware(l, func(r *http.Request) ([]Limit, error) {
		return []Limit{addrLimit(policy, perMinute, clientIP(r))}, nil
	})
}

// AddrBudget is PerIP's budget spent only by what its owner charges to it, rather than by
// every request: failed authentications, charged once they have failed (Spend) and checked
// before the work they would cost (Check), so that a client who has spent the budget gets no
// more of that work. Of the same policy and numbers as a PerIP, it is the same budget.
type AddrBudget struct {
	Limiter   *Limiter
	Policy    string
	PerMinute int
	ClientIP  func(*http.Request) netip.Addr // httpx.ClientIP{Trusted: ...}.Of
}

// Check answers nil while r's client has budget left, else the 429 rate_limited to answer.
// It spends nothing.
func (b AddrBudget) Check(r *http.Request) error {
	d, err := b.Limiter.Peek(r.Context(), addrLimit(b.Policy, b.PerMinute, b.ClientIP(r)))
	if err != nil {
		return err
	}
	return d.Err()
}

// Spend charges one to r's client, and answers the 429 rate_limited to answer when the
// budget was spent already.
func (b AddrBudget) Spend(r *http.Request) error {
	d, err := b.Limiter.Allow(r.Context(), addrLimit(b.Policy, b.PerMinute, b.ClientIP(r)))
	if err != nil {
		return err
	}
	return d.Err()
}

func addrLimit(policy string, perMinute int, a netip.Addr) Limit {
	return Limit{Scope: ClientAddr(a), Policy: policy, Rate: float64(perMinute) / 60, Burst: perMinute}
}
