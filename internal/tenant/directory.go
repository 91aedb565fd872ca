package tenant

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
)

// Directory is the in-process cache of tenant records that every request consults (status,
// plan, limits). An entry lives at most TTL, so an operator's change made on another
// replica holds here within TTL; the replica that made it drops its entry at once.
type Directory struct {
	Tenants *Tenants
	TTL     time.Duration

	mu      sync.RWMutex
	entries map[uuid.UUID]cached
	gen     uint64 // bumped by Invalidate, so a load that raced a change is not cached
	flight  singleflight.Group
}

type cached struct {
	t       Tenant
	expires time.Time
}

// Get answers a tenant's record, from the cache when fresh.
func (d *Directory) Get(ctx context.Context, id uuid.UUID) (Tenant, error) {
	now := time.Now()
	d.mu.RLock()
	e, ok := d.entries[id]
	gen := d.gen
	d.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.t, nil
	}
	// Concurrent misses for one tenant share one query.
	v, err, _ := d.flight.Do(id.String(), func() (any, error) {
		t, err := d.Tenants.Get(context.WithoutCancel(ctx), id)
		if err != nil {
			return Tenant{}, err
		}
		d.mu.Lock()
		if d.entries == nil {
			d.entries = make(map[uuid.UUID]cached)
		}
		if d.gen == gen {
			d.entries[id] = cached{t: t, expires: time.Now().Add(d.TTL)}
		}
		d.mu.Unlock()
		return t, nil
	})
	return v.(Tenant), err
}

// Invalidate drops a tenant's entry after a change.
func (d *Directory) Invalidate(id uuid.UUID) {
	d.mu.Lock()
	delete(d.entries, id)
	d.gen++
	d.mu.Unlock()
	d.flight.Forget(id.String())
}

type tenantKey struct{}

// FromContext answers the tenant record RequireActive loaded for the request.
func FromContext(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(tenantKey{}).(Tenant)
	return t, ok
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
		t, err := d.Get(r.Context(), p.TenantID)
		if errs.Is(err, errs.NotFound) {
			err = auth.ErrUnauthorized // a valid token of a tenant that no longer exists
		}
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		if t.Status == StatusSuspended {
			httpx.Error(w, r, auth.ErrTenantSuspended)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, t)))
	})
}
