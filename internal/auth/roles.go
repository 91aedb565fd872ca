package auth

import (
	"context"

	"github.com/google/uuid"
)

// CurrentRoles answers a user's role of the moment, and ok false for a user who does not
// exist (deleted). It is asked on every tenant request, so an implementation must be cheap:
// the module that owns users provides one that caches each answer briefly.
type CurrentRoles interface {
	CurrentRole(ctx context.Context, tenantID, userID uuid.UUID) (role Role, ok bool, err error)
}

// effective lowers a tenant principal's role to its user's current role. A token or a key
// records a role when it is made; the user's role may have dropped since, and access follows
// the user, not the record. It never raises the role: a promotion gives no old credential
// more than it was made with. A deleted user's credentials are refused.
func (a *Authenticator) effective(ctx context.Context, p Principal) (Principal, error) {
	if p.Kind == KindPlatform {
		return p, nil // operators are no tenant's users
	}
	role, ok, err := a.Roles.CurrentRole(ctx, p.TenantID, p.UserID)
	if err != nil {
		return Principal{}, err
	}
	if !ok {
		return Principal{}, ErrUnauthorized
	}
	p.Role = lower(p.Role, role)
	return p, nil
}
