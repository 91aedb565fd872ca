package auth

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Login is what a password login needs to know about a user.
type Login struct {
	TenantID     uuid.UUID
	UserID       uuid.UUID
	Role         Role
	PasswordHash string
	Suspended    bool
	// Unverified: the tenant's plan requires a verified email and this user's is not.
	Unverified bool
}

// Logins finds the user behind a tenant slug and an email. The module that owns users
// provides it; it answers an errs.NotFound error when either is unknown.
type Logins interface {
	FindLogin(ctx context.Context, tenantSlug, email string) (Login, error)
}

// ErrEmailUnverified refuses tokens to a user whose tenant's plan requires a verified email
// (EMAIL_VERIFICATION_REQUIRED_PLANS) until they follow the link mailed to them.
var ErrEmailUnverified = errs.E(errs.Forbidden, "forbidden", "verify your email address first: follow the link mailed to you (a password reset mails a new one)")

var errInvalidCredentials = errs.E(errs.Unauthenticated, "invalid_credentials", "the tenant, email or password is wrong")

// ErrTenantSuspended is the answer to any tenant request of a suspended tenant.
var ErrTenantSuspended = errs.E(errs.Forbidden, "tenant_suspended", "this tenant is suspended")

// Grants implements the token endpoint's grants.
type Grants struct {
	DB        *postgres.DB
	Logins    Logins
	Sessions  *Sessions
	Passwords *Passwords
}

// TokenRequest is the body of POST /v1/auth/token.
type TokenRequest struct {
	GrantType    string `json:"grant_type"`
	Tenant       string `json:"tenant"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refresh_token"`
}

// Validate checks that the fields of the chosen grant are present.
func (r TokenRequest) Validate() error {
	var f errs.Fields
	switch r.GrantType {
	case "password":
		if r.Tenant == "" {
			f.Add("tenant", "is required for the password grant")
		}
		if r.Email == "" {
			f.Add("email", "is required for the password grant")
		}
		if r.Password == "" {
			f.Add("password", "is required for the password grant")
		}
	case "refresh_token":
		if r.RefreshToken == "" {
			f.Add("refresh_token", "is required for the refresh_token grant")
		}
	default:
		f.Add("grant_type", `must be "password" or "refresh_token"`)
	}
	return f.Err()
}

// Token runs the grant a request names.
func (g *Grants) Token(ctx context.Context, r TokenRequest) (TokenPair, error) {
	if r.GrantType == "refresh_token" {
		return g.Sessions.Refresh(ctx, r.RefreshToken)
	}
	return g.password(ctx, r.Tenant, r.Email, r.Password)
}

// password checks a password login. An unknown tenant, an unknown email and a wrong password
// answer the same error in about the same time, so none of them can be probed.
func (g *Grants) password(ctx context.Context, slug, email, password string) (TokenPair, error) {
	l, err := g.Logins.FindLogin(ctx, slug, NormalizeEmail(email))
	if errs.Is(err, errs.NotFound) {
		if err := g.Passwords.DummyVerify(ctx, password); err != nil {
			return TokenPair{}, err
		}
		return TokenPair{}, errInvalidCredentials
	}
	if err != nil {
		return TokenPair{}, err
	}
	ok, err := g.Passwords.Verify(ctx, password, l.PasswordHash)
	if err != nil {
		return TokenPair{}, fmt.Errorf("grants.password user %s: %w", l.UserID, err)
	}
	if !ok {
		return TokenPair{}, errInvalidCredentials
	}
	if l.Suspended {
		return TokenPair{}, ErrTenantSuspended
	}
	if l.Unverified {
		return TokenPair{}, ErrEmailUnverified
	}
	var pair TokenPair
	err = g.DB.InTenantTx(ctx, l.TenantID, func(tx pgx.Tx) error {
		pair, err = g.Sessions.Issue(ctx, tx, l.TenantID, l.UserID, l.Role)
		return err
	})
	if err != nil {
		return TokenPair{}, fmt.Errorf("grants.password user %s: %w", l.UserID, err)
	}
	return pair, nil
}
