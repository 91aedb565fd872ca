package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// TokenPair is what a login or a refresh answers.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Roles tells sessions a user's current role, so a refreshed token never carries a role
// the user has lost, and refuses (ErrTenantSuspended) while the tenant is suspended. The
// module that owns users provides it.
type Roles interface {
	UserRole(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (Role, error)
}

// Sessions issues access tokens and rotating refresh tokens. A refresh token is spent on
// use; presenting a spent one means it leaked, so its whole family is revoked.
type Sessions struct {
	DB         *postgres.DB
	Keys       *Keys
	Roles      Roles
	Clock      clock.Clock
	Issuer     string
	Audience   string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
}

var errBadRefresh = errs.E(errs.Unauthenticated, "unauthorized", "the refresh token is invalid, expired or revoked")

// Issue starts a new session family for a user, inside the caller's transaction.
func (s *Sessions) Issue(ctx context.Context, tx pgx.Tx, tenantID, userID uuid.UUID, role Role) (TokenPair, error) {
	pair, err := s.issue(ctx, tx, tenantID, userID, role, uuid.Must(uuid.NewV7()))
	if err != nil {
		return TokenPair{}, fmt.Errorf("sessions.issue user %s: %w", userID, err)
	}
	return pair, nil
}

func (s *Sessions) issue(ctx context.Context, tx pgx.Tx, tenantID, userID uuid.UUID, role Role, family uuid.UUID) (TokenPair, error) {
	id, refresh, hash, err := NewRefreshToken(tenantID)
	if err != nil {
		return TokenPair{}, err
	}
	now := s.Clock.Now()
	_, err = tx.Exec(ctx, `
		INSERT INTO refresh_tokens (tenant_id, id, family_id, user_id, token_hash, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tenantID, id, family, userID, hash, now.Add(s.RefreshTTL), now)
	if err != nil {
		return TokenPair{}, err
	}
	access, err := s.AccessToken(tenantID, userID.String(), role, s.AccessTTL)
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(s.AccessTTL / time.Second)}, nil
}

// AccessToken signs a JWT for a subject. tenantID is uuid.Nil for platform operators.
func (s *Sessions) AccessToken(tenantID uuid.UUID, subject string, role Role, ttl time.Duration) (string, error) {
	now := s.Clock.Now()
	c := Claims{Role: string(role)}
	c.Issuer, c.Subject = s.Issuer, subject
	c.Audience = []string{s.Audience}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	c.ID = uuid.Must(uuid.NewV7()).String()
	if tenantID != uuid.Nil {
		c.TenantID = tenantID.String()
	}
	return s.Keys.Sign(c)
}

// Refresh spends a refresh token and answers a new pair in the same family.
func (s *Sessions) Refresh(ctx context.Context, token string) (TokenPair, error) {
	tenantID, id, secret, ok := ParseRefreshToken(token)
	if !ok {
		return TokenPair{}, errBadRefresh
	}
	var pair TokenPair
	var reused bool
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		var (
			family, userID    uuid.UUID
			hash              []byte
			expires           time.Time
			usedAt, revokedAt *time.Time
		)
		err := tx.QueryRow(ctx, `
			SELECT family_id, user_id, token_hash, expires_at, used_at, revoked_at
			  FROM refresh_tokens WHERE id = $1 FOR UPDATE`, id).
			Scan(&family, &userID, &hash, &expires, &usedAt, &revokedAt)
		if postgres.IsNoRows(err) || (err == nil && !SecretMatches(secret, hash)) {
			return errBadRefresh
		}
		if err != nil {
			return err
		}
		now := s.Clock.Now()
		if usedAt != nil || revokedAt != nil {
			// A spent token came back: whoever holds the family is not to be trusted.
			reused = true
			return revokeFamily(ctx, tx, family, now)
		}
		if !now.Before(expires) {
			return errBadRefresh
		}
		if _, err := tx.Exec(ctx, "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1", id, now); err != nil {
			return err
		}
		role, err := s.Roles.UserRole(ctx, tx, userID)
		if err != nil {
			return err
		}
		pair, err = s.issue(ctx, tx, tenantID, userID, role, family)
		return err
	})
	if reused {
		return TokenPair{}, errBadRefresh
	}
	if errs.KindOf(err) == errs.NotFound {
		return TokenPair{}, errBadRefresh // the user is gone
	}
	if err != nil {
		// id names the token's row; its secret stays out of the message.
		return TokenPair{}, fmt.Errorf("sessions.refresh %s: %w", id, err)
	}
	return pair, nil
}

// Revoke ends the session a refresh token belongs to (logout). An unknown token is not an
// error: logging out twice succeeds.
func (s *Sessions) Revoke(ctx context.Context, token string) error {
	tenantID, id, secret, ok := ParseRefreshToken(token)
	if !ok {
		return nil
	}
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		var family uuid.UUID
		var hash []byte
		err := tx.QueryRow(ctx, "SELECT family_id, token_hash FROM refresh_tokens WHERE id = $1", id).Scan(&family, &hash)
		if postgres.IsNoRows(err) || (err == nil && !SecretMatches(secret, hash)) {
			return nil
		}
		if err != nil {
			return err
		}
		return revokeFamily(ctx, tx, family, s.Clock.Now())
	})
	if err != nil {
		return fmt.Errorf("sessions.revoke %s: %w", id, err)
	}
	return nil
}

// RevokeUser ends every session of a user, inside the caller's transaction (password
// change, demotion, deletion).
func (s *Sessions) RevokeUser(ctx context.Context, tx pgx.Tx, userID uuid.UUID) error {
	_, err := tx.Exec(ctx,
		"UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", userID, s.Clock.Now())
	if err != nil {
		return fmt.Errorf("sessions.revoke_user %s: %w", userID, err)
	}
	return nil
}

func revokeFamily(ctx context.Context, tx pgx.Tx, family uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx,
		"UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL", family, now)
	return err
}
