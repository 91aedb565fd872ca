package flags

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// TenantFunc answers the calling tenant of a request; the server builds it on the tenant
// directory's record (tenant.FromContext). ok is false outside a tenant's request.
type TenantFunc func(ctx context.Context) (t Tenant, ok bool)

// Client is how the service evaluates flags: it holds the current snapshot, which the
// Refresher replaces, and evaluates against it without calling anything. The zero value
// serves every flag's default until a snapshot arrives.
type Client struct {
	Tenant TenantFunc

	current atomic.Pointer[Snapshot]
}

// Current answers the latest snapshot (nil, the empty snapshot, before the first load).
func (c *Client) Current() *Snapshot { return c.current.Load() }

// set installs s as the current snapshot.
func (c *Client) set(s *Snapshot) { c.current.Store(s) }

// pinKey is the context key of the snapshot pinned for a request. It names the client, so
// two clients in one process never read each other's pins.
type pinKey struct{ c *Client }

// Pin returns ctx carrying the current snapshot, so that every evaluation made with it sees
// one configuration version however many flags it reads.
func (c *Client) Pin(ctx context.Context) context.Context {
	return context.WithValue(ctx, pinKey{c}, c.current.Load())
}

// Middleware pins the current snapshot for each request.
func (c *Client) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Pin's value, in the request's state where it has room (httpx.WithValue).
		next.ServeHTTP(w, httpx.WithValue(r, pinKey{c}, c.current.Load()))
	})
}

// Snapshot answers the snapshot pinned in ctx, or the current one.
func (c *Client) Snapshot(ctx context.Context) *Snapshot {
	if s, ok := ctx.Value(pinKey{c}).(*Snapshot); ok {
		return s
	}
	return c.current.Load()
}

// target is the request's tenant as a Target (the zero Target outside a tenant's request).
func (c *Client) target(ctx context.Context) Target {
	if c.Tenant == nil {
		return Target{}
	}
	t, _ := c.Tenant(ctx)
	return Target{Tenant: t}
}

// Evaluate answers flag key for the request's tenant, whatever the flag's type.
func (c *Client) Evaluate(ctx context.Context, key string) Result {
	t := c.target(ctx)
	return c.Snapshot(ctx).evaluate(key, TypeAny, &t)
}

// Bool answers boolean flag key for the request's tenant, or def if the flag is missing,
// of another type, or cannot be evaluated.
func (c *Client) Bool(ctx context.Context, key string, def bool) bool {
	if v, ok := c.value(ctx, key, TypeBoolean).(bool); ok {
		return v
	}
	return def
}

// String answers string flag key for the request's tenant, or def (see Bool).
func (c *Client) String(ctx context.Context, key string, def string) string {
	if v, ok := c.value(ctx, key, TypeString).(string); ok {
		return v
	}
	return def
}

// Number answers number flag key for the request's tenant, or def (see Bool).
func (c *Client) Number(ctx context.Context, key string, def float64) float64 {
	if v, ok := c.value(ctx, key, TypeNumber).(float64); ok {
		return v
	}
	return def
}

func (c *Client) value(ctx context.Context, key string, want Type) any {
	t := c.target(ctx)
	return c.Snapshot(ctx).evaluate(key, want, &t).Value
}
