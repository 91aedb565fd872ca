package auth

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// APIKey is a tenant credential for machines. Its secret is shown once, at creation, and
// stored only as a hash. It acts for the user who created it, never above that user's
// current role, and is revoked when that user is deleted.
type APIKey struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	CreatedBy  uuid.UUID  `json:"created_by"`
	Key        string     `json:"key,omitempty"`
	RateLimit  *RateLimit `json:"rate_limit"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// NewAPIKeyInput is the body of POST /v1/api-keys.
type NewAPIKeyInput struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	RateLimit *RateLimit `json:"rate_limit"`
}

// Validate checks the fields. The rate limit's numbers are checked by APIKeys.CheckLimit,
// the rate limiter's own rule.
func (in NewAPIKeyInput) Validate() error {
	var f errs.Fields
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 200 {
		f.Add("name", "is required, at most 200 characters")
	}
	if _, ok := ParseTenantRole(string(in.Role)); !ok {
		f.Add("role", "must be owner, admin or member")
	}
	if in.RateLimit != nil && in.RateLimit.MaxConcurrent != 0 {
		f.Add("rate_limit.max_concurrent", "is set by the plan, not per key")
	}
	return f.Err()
}

// APIKeys manages a tenant's API keys.
type APIKeys struct {
	DB    *postgres.DB
	Clock clock.Clock
	Live  bool // sk_live_ keys in production, sk_test_ elsewhere
	// CheckLimit is the rate limiter's rule for a limit (ratelimit.CheckRateLimit, handed in
	// because ratelimit imports auth): a key's limit must pass it when the key is created,
	// or every request made with the key would fail. Required.
	CheckLimit func(field string, rl RateLimit) error
}

// Create makes a key for the caller's tenant; the answer is the only time its secret is seen.
// The key acts for the caller's user: a key minted by a key has that key's creator.
func (s *APIKeys) Create(ctx context.Context, p Principal, in NewAPIKeyInput) (APIKey, error) {
	if err := CheckGrant(p, in.Role); err != nil {
		return APIKey{}, err
	}
	if in.RateLimit != nil {
		if err := s.CheckLimit("rate_limit", *in.RateLimit); err != nil {
			return APIKey{}, err
		}
	}
	id, token, hash, err := NewAPIKey(s.Live)
	if err != nil {
		return APIKey{}, fmt.Errorf("api_keys.create tenant %s: %w", p.TenantID, err)
	}
	k := APIKey{ID: id, Name: in.Name, Role: in.Role, CreatedBy: p.UserID, Key: token, RateLimit: in.RateLimit, CreatedAt: s.Clock.Now()}
	err = s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO api_keys (tenant_id, id, name, role, created_by, secret_hash, rate_limit, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			p.TenantID, k.ID, k.Name, k.Role, k.CreatedBy, hash, k.RateLimit, k.CreatedAt)
		return err
	})
	if postgres.IsForeignKeyViolation(err, "api_keys_creator_fkey") {
		return APIKey{}, ErrUnauthorized // the caller's user was deleted since it authenticated
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("api_keys.create tenant %s: %w", p.TenantID, err)
	}
	return k, nil
}

// List answers the tenant's active keys, never their secrets.
func (s *APIKeys) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]APIKey, error) {
	var keys []APIKey
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `
			SELECT id, name, role, created_by, rate_limit, created_at, last_used_at
			  FROM api_keys
			 WHERE revoked_at IS NULL AND id > $1
			 ORDER BY id LIMIT $2`, page.Cursor, page.Limit+1)
		var err error
		keys, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
			var k APIKey
			err := r.Scan(&k.ID, &k.Name, &k.Role, &k.CreatedBy, &k.RateLimit, &k.CreatedAt, &k.LastUsedAt)
			return k, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("api_keys.list tenant %s: %w", tenantID, err)
	}
	return keys, nil
}

// Revoke refuses the key from now on. Revoking acts on the key's role, so nobody revokes a
// key that outranks them (CheckActOn).
func (s *APIKeys) Revoke(ctx context.Context, p Principal, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		var role Role
		err := tx.QueryRow(ctx, "SELECT role FROM api_keys WHERE id = $1 AND revoked_at IS NULL FOR UPDATE", id).Scan(&role)
		if postgres.IsNoRows(err) {
			return errs.NotFoundf("no API key %s", id)
		}
		if err != nil {
			return err
		}
		if err := CheckActOn(p, role); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE api_keys SET revoked_at = $2 WHERE id = $1", id, s.Clock.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("api_keys.revoke %s: %w", id, err)
	}
	return nil
}

// RevokeUser revokes every key a user created, inside the caller's transaction (the user's
// deletion): a key acts for its creator, and does not outlive them.
func (s *APIKeys) RevokeUser(ctx context.Context, tx pgx.Tx, userID uuid.UUID) error {
	_, err := tx.Exec(ctx,
		"UPDATE api_keys SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL", userID, s.Clock.Now())
	if err != nil {
		return fmt.Errorf("api_keys.revoke_user %s: %w", userID, err)
	}
	return nil
}
