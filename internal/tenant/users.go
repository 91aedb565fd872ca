package tenant

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// User is a person who signs in to a tenant.
type User struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	Role      auth.Role `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

const userColumns = "id, email, role, created_at, updated_at"

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Role, &u.CreatedAt, &u.UpdatedAt)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, err
}

func getUser(ctx context.Context, tx pgx.Tx, id uuid.UUID, lock bool) (User, error) {
	q := "SELECT " + userColumns + " FROM users WHERE id = $1"
	if lock {
		q += " FOR UPDATE"
	}
	u, err := scanUser(tx.QueryRow(ctx, q, id))
	if postgres.IsNoRows(err) {
		return User{}, errs.NotFoundf("no user %s", id)
	}
	return u, err
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$`)

func checkPassword(f *errs.Fields, field, pw string) {
	if n := utf8.RuneCountInString(pw); n < 10 || len(pw) > 1024 {
		f.Add(field, "must be at least 10 characters (and at most 1024 bytes)")
	}
}

func checkEmail(f *errs.Fields, email string) {
	if !auth.ValidEmail(auth.NormalizeEmail(email)) {
		f.Add("email", "must be a valid email address")
	}
}

// SignupInput is the body of POST /v1/signup.
type SignupInput struct {
	TenantName string `json:"tenant_name"`
	TenantSlug string `json:"tenant_slug"`
	Email      string `json:"email"`
	Password   string `json:"password"`
}

// Validate checks every field.
func (in SignupInput) Validate() error {
	var f errs.Fields
	if in.TenantName == "" || utf8.RuneCountInString(in.TenantName) > 200 {
		f.Add("tenant_name", "is required, at most 200 characters")
	}
	if !slugPattern.MatchString(in.TenantSlug) {
		f.Add("tenant_slug", "must be 2 to 63 lowercase letters, digits or inner hyphens")
	}
	checkEmail(&f, in.Email)
	checkPassword(&f, "password", in.Password)
	return f.Err()
}

// SignupResult answers a signup: the new tenant, its owner and the owner's tokens.
type SignupResult struct {
	Tenant Tenant `json:"tenant"`
	User   User   `json:"user"`
	auth.TokenPair
}

// NewUserInput is the body of POST /v1/users.
type NewUserInput struct {
	Email    string    `json:"email"`
	Password string    `json:"password"`
	Role     auth.Role `json:"role"`
}

// Validate checks every field.
func (in NewUserInput) Validate() error {
	var f errs.Fields
	checkEmail(&f, in.Email)
	checkPassword(&f, "password", in.Password)
	if _, ok := auth.ParseTenantRole(string(in.Role)); !ok {
		f.Add("role", "must be owner, admin or member")
	}
	return f.Err()
}

// RoleUpdate is the body of PATCH /v1/users/{id}.
type RoleUpdate struct {
	Role auth.Role `json:"role"`
}

// Validate checks the role.
func (in RoleUpdate) Validate() error {
	if _, ok := auth.ParseTenantRole(string(in.Role)); !ok {
		return errs.Field("role", "must be owner, admin or member")
	}
	return nil
}

// PasswordChange is the body of POST /v1/me/password.
type PasswordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// Validate checks the new password.
func (in PasswordChange) Validate() error {
	var f errs.Fields
	if in.CurrentPassword == "" {
		f.Add("current_password", "is required")
	}
	checkPassword(&f, "new_password", in.NewPassword)
	return f.Err()
}

// Me is the caller: a user or an API key.
type Me struct {
	ID            uuid.UUID `json:"id"`
	Kind          string    `json:"kind"`
	Email         string    `json:"email,omitempty"`
	EmailVerified *bool     `json:"email_verified,omitempty"` // users only
	Name          string    `json:"name,omitempty"`
	Role          auth.Role `json:"role"`
}

var (
	errSlugTaken  = errs.E(errs.Conflict, "slug_taken", "a tenant with this slug exists")
	errEmailTaken = errs.E(errs.Conflict, "email_taken", "a user with this email exists in this tenant")
	errLastOwner  = errs.E(errs.Conflict, "conflict", "a tenant keeps at least one owner")
	errWrongPass  = errs.E(errs.Unauthenticated, "invalid_credentials", "the current password is wrong")
)

// Users manages accounts: signup, a tenant's users, and the caller's own account.
type Users struct {
	DB       *postgres.DB
	Outbox   *events.Outbox
	Sessions *auth.Sessions
	APIKeys  *auth.APIKeys // a deleted user's keys are revoked with them
	// Roles caches users' current roles for authentication; a change of role or a deletion
	// drops the user's entry, so it holds on this replica at once.
	Roles     *Roles
	Clock     clock.Clock
	Passwords *auth.Passwords
	Plan      string // the plan new tenants start on
	// Verifications mails a new owner the link that verifies their email (nil: none).
	Verifications *Recovery
	// VerifiedPlans are the plans whose users get tokens only once their email is verified
	// (EMAIL_VERIFICATION_REQUIRED_PLANS).
	VerifiedPlans []string
}

// Signup creates a tenant with its first owner and signs the owner in, all or nothing.
func (s *Users) Signup(ctx context.Context, in SignupInput) (SignupResult, error) {
	hash, err := s.Passwords.Hash(ctx, in.Password)
	if err != nil {
		return SignupResult{}, fmt.Errorf("users.signup slug %q: %w", in.TenantSlug, err)
	}
	tenantID, userID := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	now := s.Clock.Now()
	var res SignupResult
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		t, err := scanTenant(tx.QueryRow(ctx, `
			INSERT INTO tenants (id, name, slug, plan_code, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
			RETURNING `+tenantColumns, tenantID, in.TenantName, in.TenantSlug, s.Plan, now))
		if postgres.IsUniqueViolation(err, "tenants_slug_key") {
			return errSlugTaken
		}
		if err != nil {
			return err
		}
		u, err := insertUser(ctx, tx, tenantID, userID, auth.NormalizeEmail(in.Email), hash, auth.RoleOwner, now)
		if err != nil {
			return err
		}
		if err := s.Outbox.Append(ctx, tx, tenantID, "tenant.created", t); err != nil {
			return err
		}
		if err := s.Outbox.Append(ctx, tx, tenantID, "user.created", u); err != nil {
			return err
		}
		if s.Verifications != nil {
			if err := s.Verifications.IssueVerification(ctx, tx, tenantID, userID, u.Email); err != nil {
				return err
			}
		}
		pair, err := s.Sessions.Issue(ctx, tx, tenantID, userID, auth.RoleOwner)
		res = SignupResult{Tenant: t, User: u, TokenPair: pair}
		return err
	})
	if err != nil {
		return SignupResult{}, fmt.Errorf("users.signup slug %q: %w", in.TenantSlug, err)
	}
	return res, nil
}

func insertUser(ctx context.Context, tx pgx.Tx, tenantID, id uuid.UUID, email, hash string, role auth.Role, now time.Time) (User, error) {
	u, err := scanUser(tx.QueryRow(ctx, `
		INSERT INTO users (tenant_id, id, email, password_hash, role, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING `+userColumns,
		tenantID, id, email, hash, role, now))
	if postgres.IsUniqueViolation(err, "users_email_key") {
		return User{}, errEmailTaken
	}
	return u, err
}

// FindLogin implements auth.Logins.
func (s *Users) FindLogin(ctx context.Context, slug, email string) (auth.Login, error) {
	var l auth.Login
	var status string
	err := s.DB.Pool.QueryRow(ctx, "SELECT tenant_id, status FROM app.tenant_by_slug($1)", slug).Scan(&l.TenantID, &status)
	if postgres.IsNoRows(err) {
		return l, errs.NotFoundf("no tenant %q", slug)
	}
	if err != nil {
		return l, fmt.Errorf("users.find_login slug %q: %w", slug, err)
	}
	l.Suspended = status == StatusSuspended
	err = s.DB.InTenantTx(ctx, l.TenantID, func(tx pgx.Tx) error {
		var verified bool
		var plan string
		err := tx.QueryRow(ctx, `SELECT u.id, u.role, u.password_hash, u.email_verified_at IS NOT NULL, t.plan_code
		                          FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.email = $1`, email).
			Scan(&l.UserID, &l.Role, &l.PasswordHash, &verified, &plan)
		l.Unverified = !verified && slices.Contains(s.VerifiedPlans, plan)
		return err
	})
	if postgres.IsNoRows(err) {
		return l, errs.NotFoundf("no user")
	}
	if err != nil {
		// Not the email: it is personal data, and the log keeps it.
		return l, fmt.Errorf("users.find_login slug %q: %w", slug, err)
	}
	return l, nil
}

// UserRole implements auth.Roles: the user's current role, refused while the tenant is
// suspended, so a refresh cannot outlast a suspension.
func (s *Users) UserRole(ctx context.Context, tx pgx.Tx, id uuid.UUID) (auth.Role, error) {
	var role auth.Role
	var status, plan string
	var verified bool
	err := tx.QueryRow(ctx, `SELECT u.role, t.status, t.plan_code, u.email_verified_at IS NOT NULL
	                          FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1`, id).
		Scan(&role, &status, &plan, &verified)
	switch {
	case postgres.IsNoRows(err):
		return "", errs.NotFoundf("no user %s", id)
	case err != nil:
		return "", fmt.Errorf("users.role %s: %w", id, err)
	case status == StatusSuspended:
		return "", auth.ErrTenantSuspended
	case !verified && slices.Contains(s.VerifiedPlans, plan):
		return "", auth.ErrEmailUnverified
	}
	return role, nil
}

// CurrentRole implements auth.CurrentRoles without a cache (Roles caches it): the user's
// role, or ok false if there is no such user, in one round trip.
func (s *Users) CurrentRole(ctx context.Context, tenantID, id uuid.UUID) (auth.Role, bool, error) {
	role, err := postgres.ReadRow(ctx, s.DB, tenantID, scanRole, "SELECT role FROM users WHERE id = $1", id)
	switch {
	case postgres.IsNoRows(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("users.current_role %s: %w", id, err)
	}
	return role, true, nil
}

func scanRole(row pgx.Row) (r auth.Role, err error) {
	err = row.Scan(&r)
	return r, err
}

// Me answers who the caller is.
func (s *Users) Me(ctx context.Context, p auth.Principal) (Me, error) {
	me := Me{ID: p.ID, Role: p.Role}
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		if p.Kind == auth.KindAPIKey {
			me.Kind = "api_key"
			return tx.QueryRow(ctx, "SELECT name FROM api_keys WHERE id = $1", p.ID).Scan(&me.Name)
		}
		me.Kind = "user"
		var verified bool
		me.EmailVerified = &verified
		return tx.QueryRow(ctx, "SELECT email, email_verified_at IS NOT NULL FROM users WHERE id = $1", p.ID).Scan(&me.Email, &verified)
	})
	if postgres.IsNoRows(err) || errs.Is(err, errs.NotFound) {
		return Me{}, auth.ErrUnauthorized // a valid token of a user or key that is gone
	}
	if err != nil {
		return Me{}, fmt.Errorf("users.me %s: %w", p.ID, err)
	}
	return me, nil
}

// ChangePassword sets a new password after checking the current one, and ends every
// session of the user: whoever else knew the old password is signed out.
func (s *Users) ChangePassword(ctx context.Context, p auth.Principal, in PasswordChange) error {
	if p.Kind != auth.KindUser {
		return errs.E(errs.Forbidden, "forbidden", "API keys have no password")
	}
	var current string
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1", p.ID).Scan(&current)
	})
	if postgres.IsNoRows(err) {
		return auth.ErrUnauthorized
	}
	if err != nil {
		return fmt.Errorf("users.change_password %s: %w", p.ID, err)
	}
	ok, err := s.Passwords.Verify(ctx, in.CurrentPassword, current)
	if err != nil {
		return fmt.Errorf("users.change_password %s: %w", p.ID, err)
	}
	if !ok {
		return errWrongPass
	}
	hash, err := s.Passwords.Hash(ctx, in.NewPassword)
	if err != nil {
		return fmt.Errorf("users.change_password %s: %w", p.ID, err)
	}
	err = s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1", p.ID, hash, s.Clock.Now()); err != nil {
			return err
		}
		return s.Sessions.RevokeUser(ctx, tx, p.ID)
	})
	if err != nil {
		return fmt.Errorf("users.change_password %s: %w", p.ID, err)
	}
	return nil
}

// Create adds a user to the caller's tenant; nobody grants a role above their own.
func (s *Users) Create(ctx context.Context, p auth.Principal, in NewUserInput) (User, error) {
	if err := auth.CheckGrant(p, in.Role); err != nil {
		return User{}, err
	}
	hash, err := s.Passwords.Hash(ctx, in.Password)
	if err != nil {
		return User{}, fmt.Errorf("users.create tenant %s: %w", p.TenantID, err)
	}
	var u User
	err = s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) (err error) {
		u, err = insertUser(ctx, tx, p.TenantID, uuid.Must(uuid.NewV7()), auth.NormalizeEmail(in.Email), hash, in.Role, s.Clock.Now())
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, p.TenantID, "user.created", u)
	})
	if err != nil {
		return User{}, fmt.Errorf("users.create tenant %s: %w", p.TenantID, err)
	}
	return u, nil
}

// Get answers one user of the tenant.
func (s *Users) Get(ctx context.Context, tenantID, id uuid.UUID) (User, error) {
	var u User
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) (err error) {
		u, err = getUser(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("users.get %s: %w", id, err)
	}
	return u, nil
}

// List answers the tenant's users in creation order.
func (s *Users) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]User, error) {
	var out []User
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, "SELECT "+userColumns+" FROM users WHERE id > $1 ORDER BY id LIMIT $2", page.Cursor, page.Limit+1)
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("users.list tenant %s: %w", tenantID, err)
	}
	return out, nil
}

// SetRole changes a user's role. The caller must outrank neither the user's current role
// nor the new one; the last owner stays an owner; a demoted user's sessions end, and their
// access tokens and keys act with the new role from the next request on.
func (s *Users) SetRole(ctx context.Context, p auth.Principal, id uuid.UUID, role auth.Role) (User, error) {
	var u User
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		cur, owners, err := lockForChange(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if err := auth.CheckGrant(p, role); err != nil {
			return err
		}
		if cur.Role == auth.RoleOwner && role != auth.RoleOwner && owners <= 1 {
			return errLastOwner
		}
		u, err = scanUser(tx.QueryRow(ctx, "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 RETURNING "+userColumns, id, role, s.Clock.Now()))
		if err != nil {
			return err
		}
		if !role.AtLeast(cur.Role) {
			if err := s.Sessions.RevokeUser(ctx, tx, id); err != nil {
				return err
			}
		}
		return s.Outbox.Append(ctx, tx, p.TenantID, "user.updated", u)
	})
	s.Roles.Invalidate(p.TenantID, id)
	if err != nil {
		return User{}, fmt.Errorf("users.set_role %s: %w", id, err)
	}
	return u, nil
}

// Delete removes a user and, with them, their sessions and the API keys they created; their
// access tokens are refused from the next request on.
func (s *Users) Delete(ctx context.Context, p auth.Principal, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		cur, owners, err := lockForChange(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if cur.Role == auth.RoleOwner && owners <= 1 {
			return errLastOwner
		}
		if err := s.APIKeys.RevokeUser(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM users WHERE id = $1", id); err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, p.TenantID, "user.deleted", map[string]uuid.UUID{"id": id})
	})
	s.Roles.Invalidate(p.TenantID, id)
	if err != nil {
		return fmt.Errorf("users.delete %s: %w", id, err)
	}
	return nil
}

// lockForChange locks the user's row and checks that the caller may change this user. The
// owners are locked first, in id order, and counted: two owners demoting each other at once
// then queue instead of deadlocking, and cannot both succeed.
func lockForChange(ctx context.Context, tx pgx.Tx, p auth.Principal, id uuid.UUID) (u User, owners int, err error) {
	rows, _ := tx.Query(ctx, "SELECT id FROM users WHERE role = 'owner' ORDER BY id FOR UPDATE")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return User{}, 0, err
	}
	if u, err = getUser(ctx, tx, id, true); err != nil {
		return User{}, 0, err
	}
	return u, len(ids), auth.CheckActOn(p, u.Role)
}
