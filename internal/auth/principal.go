package auth

import (
	"context"
	"net/http"

	"github.com/google/uuid"
)

// Role is what a principal may do. Tenant roles are ordered; platform_admin stands apart:
// it belongs to no tenant and opens only the operator routes.
type Role string

const (
	RoleMember        Role = "member"
	RoleAdmin         Role = "admin"
	RoleOwner         Role = "owner"
	RolePlatformAdmin Role = "platform_admin"
)

// rank orders tenant roles; anything else ranks below member.
func (r Role) rank() int {
	switch r {
	case RoleMember:
		return 1
	case RoleAdmin:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// AtLeast reports whether r is a tenant role as strong as min or stronger.
func (r Role) AtLeast(min Role) bool { return r.rank() > 0 && r.rank() >= min.rank() }

// MayActOn is the one rule of rank: a principal of role actor may act on a principal of
// role target (grant that role, change or delete a user who has it, revoke a key that
// carries it) only if target is not above actor. Without it, an admin could remove the
// owners above them and, with them, any check on what the admin does.
func MayActOn(actor, target Role) bool { return actor.rank() > 0 && target.rank() <= actor.rank() }

// lower answers the weaker of two tenant roles.
func lower(a, b Role) Role {
	if b.rank() < a.rank() {
		return b
	}
	return a
}

// ParseTenantRole accepts owner, admin and member.
func ParseTenantRole(s string) (Role, bool) {
	r := Role(s)
	return r, r.rank() > 0
}

// Kind says what authenticated a request.
type Kind uint8

const (
	KindUser     Kind = iota + 1 // a user's JWT
	KindAPIKey                   // a tenant API key
	KindPlatform                 // an operator's JWT
)

// String names the kind, as logs and traces show it.
func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindAPIKey:
		return "api_key"
	case KindPlatform:
		return "platform"
	}
	return "unknown"
}

// RateLimit is a requests-per-second budget with a burst, as plans and API keys carry it.
type RateLimit struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
	MaxConcurrent     int     `json:"max_concurrent,omitempty"`
}

// Principal is who is calling.
type Principal struct {
	Kind     Kind
	TenantID uuid.UUID  // uuid.Nil for platform operators
	ID       uuid.UUID  // the user or the API key; the scope of idempotency keys
	UserID   uuid.UUID  // the user it acts for: the user, or the key's creator; uuid.Nil for operators
	Role     Role       // effective: never above the user's current role (Authenticator)
	KeyLimit *RateLimit // an API key's own, tighter limit
	Operator string     // a platform operator's subject claim, for the audit log
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TenantOf answers the calling tenant of a request behind Authenticate.
func TenantOf(r *http.Request) uuid.UUID { return MustFromContext(r.Context()).TenantID }

// MustFromContext returns the principal of a route behind Authenticate; reaching it without
// one is a wiring bug, not a client error.
func MustFromContext(ctx context.Context) Principal {
	p, ok := FromContext(ctx)
	if !ok {
		panic("auth: no principal in context: route is missing the Authenticate middleware")
	}
	return p
}
