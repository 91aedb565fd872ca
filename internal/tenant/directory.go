package tenant

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/cache"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Directory is the in-process cache of tenant records that every request consults (status,
// plan, limits). An entry lives at most its TTL, so an operator's change made on another
// replica holds here within TTL; the replica that made it drops its entry at once.
type Directory struct {
	// Records by pointer, shared and never changed once read: a request puts its tenant's in
	// its context without copying it into an allocation of its own.
	cache *cache.Cache[uuid.UUID, *Tenant]
}

// NewDirectory returns a Directory reading tenants through tenants and keeping each for at
// most ttl of clk's time. Set tenants.Directory to it, so that a change drops the entry.
func NewDirectory(tenants *Tenants, clk clock.Clock, ttl time.Duration) *Directory {
	load := func(ctx context.Context, id uuid.UUID) (*Tenant, error) {
		t, err := tenants.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return &t, nil
	}
	return &Directory{cache: cache.New(clk, ttl, load)}
}

// Get answers a tenant's record, from the cache when fresh.
func (d *Directory) Get(ctx context.Context, id uuid.UUID) (Tenant, error) {
	t, err := d.cache.Get(ctx, id)
	if err != nil {
		return Tenant{}, err
	}
	return *t, nil
}

// Invalidate drops a tenant's entry after a change.
func (d *Directory) Invalidate(id uuid.UUID) { d.cache.Invalidate(id) }

type tenantKey struct{}

// FromContext answers the tenant record RequireActive loaded for the request.
func FromContext(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(tenantKey{}).(*Tenant)
	if !ok {
		return Tenant{}, false
	}
	return *t, true
}

// RequireActive refuses every request of a suspended tenant, and puts the tenant's record in
// the context for the middleware after it (rate limits, quotas).
func (d *Directory) RequireActive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.MustFromContext(r.Context())
		if p.Kind == auth.KindPlatform {
			next.ServeHTTP(w, r)
			return
		}
		t, err := d.cache.Get(r.Context(), p.TenantID)
		if errs.Is(err, errs.NotFound) {
			err = auth.ErrUnauthorized // a valid token of a tenant that no longer exists
		}
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		switch {
		case t.Status == StatusSuspended:
			httpx.Error(w, r, auth.ErrTenantSuspended)
			return
		case t.Status == StatusDeleted:
			httpx.Error(w, r, auth.ErrUnauthorized)
			return
		case t.Status == StatusPendingDeletion && !openWhilePending(r):
			httpx.Error(w, r, errPendingDeletion)
			return
		}
		next.ServeHTTP(w, httpx.WithValue(r, tenantKey{}, t))
	})
}

var errPendingDeletion = errs.E(errs.Forbidden, "tenant_pending_deletion", "this tenant is pending deletion; its owner can restore it with POST /v1/tenant/restore")

// openWhilePending reports whether a request stays open to a tenant pending deletion: its
// record, its exports (to take its data away) and its restoration.
func openWhilePending(r *http.Request) bool {
	pattern := chi.RouteContext(r.Context()).RoutePattern()
	switch {
	case pattern == "/v1/tenant":
		return r.Method == http.MethodGet || r.Method == http.MethodHead
	case pattern == "/v1/tenant/restore", strings.HasPrefix(pattern, "/v1/tenant/exports"):
		return true
	}
	return false
}
