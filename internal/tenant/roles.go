package tenant

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/platform/cache"
	"github.com/saasbase/saasbase/internal/platform/clock"
)

// Roles is the in-process cache of users' current roles that authentication consults on
// every tenant request (auth.CurrentRoles). An entry, a role or the user's absence, lives at
// most its TTL, so a change made on another replica holds here within TTL; the replica that
// made it drops its entry at once (Users.Roles).
type Roles struct {
	cache *cache.Cache[member, currentRole]
}

type member struct{ tenantID, userID uuid.UUID }

type currentRole struct {
	role   auth.Role
	exists bool
}

// NewRoles returns Roles reading through users and keeping each answer for at most ttl of
// clk's time. Set users.Roles to it, so that a change drops the entry.
func NewRoles(users *Users, clk clock.Clock, ttl time.Duration) *Roles {
	return &Roles{cache: cache.New(clk, ttl, func(ctx context.Context, m member) (currentRole, error) {
		role, ok, err := users.CurrentRole(ctx, m.tenantID, m.userID)
		return currentRole{role, ok}, err
	})}
}

// CurrentRole implements auth.CurrentRoles, from the cache when fresh.
func (r *Roles) CurrentRole(ctx context.Context, tenantID, userID uuid.UUID) (auth.Role, bool, error) {
	c, err := r.cache.Get(ctx, member{tenantID, userID})
	return c.role, c.exists, err
}

// Invalidate drops a user's entry after a change of role or a deletion.
func (r *Roles) Invalidate(tenantID, userID uuid.UUID) { r.cache.Invalidate(member{tenantID, userID}) }
