package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/mail"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// How long the links of user tokens work.
const (
	ResetTTL        = time.Hour
	VerificationTTL = 7 * 24 * time.Hour
)

// Purposes of user tokens.
const (
	purposeReset        = "password_reset"
	purposeVerification = "email_verification"
)

// ResetRequest is the body of POST /v1/auth/password-reset.
type ResetRequest struct {
	Tenant string `json:"tenant"`
	Email  string `json:"email"`
}

// Validate checks that both are there and bounded; whether they name anyone is not said.
func (in ResetRequest) Validate() error {
	var f errs.Fields
	if in.Tenant == "" || len(in.Tenant) > 63 {
		f.Add("tenant", "is required, the tenant's slug")
	}
	if in.Email == "" || len(in.Email) > 254 {
		f.Add("email", "is required, at most 254 characters")
	}
	return f.Err()
}

// ResetConfirm is the body of POST /v1/auth/password-reset/confirm.
type ResetConfirm struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// Validate checks every field.
func (in ResetConfirm) Validate() error {
	var f errs.Fields
	checkToken(&f, "token", in.Token)
	checkPassword(&f, "new_password", in.NewPassword)
	return f.Err()
}

// VerifyInput is the body of POST /v1/auth/verify-email.
type VerifyInput struct {
	Token string `json:"token"`
}

// Validate checks the token's presence.
func (in VerifyInput) Validate() error {
	var f errs.Fields
	checkToken(&f, "token", in.Token)
	return f.Err()
}

// Recovery resets forgotten passwords and verifies email addresses, each through a
// single-use token mailed to the user.
type Recovery struct {
	DB        *postgres.DB
	Outbox    *events.Outbox
	Mail      *mail.Outbox
	Sessions  *auth.Sessions
	Passwords *auth.Passwords
	Clock     clock.Clock
	// ResetsPerHour bounds the reset mails one user gets in an hour (3); past it a request
	// still answers 202 and mails nothing.
	ResetsPerHour int
	// ResetFloor is the least time a reset request takes (250ms), whether or not anyone is
	// found, so that the answer's timing does not tell (the work is a few queries).
	ResetFloor time.Duration
}

// RequestReset mails a reset link to the user with this email in the tenant of this slug,
// if there is one, the tenant is active and the user has not had ResetsPerHour such mails
// in the last hour. It answers nil in every such case, and takes at least ResetFloor: the
// caller learns nothing of whether the user exists.
func (s *Recovery) RequestReset(ctx context.Context, in ResetRequest) error {
	floor := s.ResetFloor
	if floor == 0 {
		floor = 250 * time.Millisecond
	}
	// The wall clock, not s.Clock: this is about the time an answer takes.
	timer := time.NewTimer(floor)
	defer timer.Stop()
	err := s.requestReset(ctx, in.Tenant, auth.NormalizeEmail(in.Email))
	if err != nil {
		return err // a failure is a 5xx whatever the email: it reveals nothing
	}
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	return nil
}

func (s *Recovery) requestReset(ctx context.Context, slug, email string) error {
	var (
		tenantID uuid.UUID
		status   string
	)
	err := s.DB.Pool.QueryRow(ctx, "SELECT tenant_id, status FROM app.tenant_by_slug($1)", slug).Scan(&tenantID, &status)
	switch {
	case postgres.IsNoRows(err):
		return nil
	case err != nil:
		return fmt.Errorf("recovery.request_reset slug %q: %w", slug, err)
	case status != StatusActive:
		return nil
	}
	limit := s.ResetsPerHour
	if limit <= 0 {
		limit = 3
	}
	now := s.Clock.Now()
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		var (
			userID uuid.UUID
			recent int
		)
		err := tx.QueryRow(ctx, `
			SELECT u.id, (SELECT count(*) FROM user_tokens t
			               WHERE t.user_id = u.id AND t.purpose = 'password_reset' AND t.created_at > $2)
			  FROM users u WHERE u.email = $1 FOR UPDATE OF u`, email, now.Add(-time.Hour)).Scan(&userID, &recent)
		switch {
		case postgres.IsNoRows(err):
			return nil
		case err != nil:
			return err
		case recent >= limit:
			return nil // silently: the mailbox is not flooded, and the answer is the same
		}
		return s.issue(ctx, tx, tenantID, userID, email, purposeReset, mail.PasswordReset, ResetTTL, nil)
	})
	if err != nil {
		return fmt.Errorf("recovery.request_reset slug %q: %w", slug, err)
	}
	return nil
}

// issue creates a user token and mails its link, in tx.
func (s *Recovery) issue(ctx context.Context, tx pgx.Tx, tenantID, userID uuid.UUID, email, purpose, template string, ttl time.Duration, data map[string]string) error {
	prefix := resetPrefix
	if purpose == purposeVerification {
		prefix = verificationPrefix
	}
	id, token, hash, err := auth.NewTenantToken(prefix, tenantID)
	if err != nil {
		return err
	}
	now := s.Clock.Now()
	_, err = tx.Exec(ctx, `
		INSERT INTO user_tokens (tenant_id, id, user_id, purpose, email, token_hash, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tenantID, id, userID, purpose, email, hash, now.Add(ttl), now)
	if err != nil {
		return err
	}
	if data == nil {
		data = map[string]string{}
	}
	_, err = s.Mail.Enqueue(ctx, tx, tenantID, mail.Request{Template: template, To: email, Token: token, Data: data})
	return err
}

// IssueVerification mails userID a link that verifies email, in the caller's transaction
// (signup's).
func (s *Recovery) IssueVerification(ctx context.Context, tx pgx.Tx, tenantID, userID uuid.UUID, email string) error {
	return s.issue(ctx, tx, tenantID, userID, email, purposeVerification, mail.EmailVerification, VerificationTTL, nil)
}

// spend checks a user token in tx, locks it and, with mark, marks it used; it answers the
// user and the email it was mailed to. Anything wrong is errInvalidToken.
func (s *Recovery) spend(ctx context.Context, tx pgx.Tx, id uuid.UUID, secret []byte, purpose string, mark bool) (userID uuid.UUID, email string, err error) {
	var (
		hash    []byte
		expires time.Time
		usedAt  *time.Time
		kind    string
	)
	err = tx.QueryRow(ctx, `SELECT user_id, email, token_hash, expires_at, used_at, purpose FROM user_tokens WHERE id = $1 FOR UPDATE`, id).
		Scan(&userID, &email, &hash, &expires, &usedAt, &kind)
	now := s.Clock.Now()
	switch {
	case postgres.IsNoRows(err):
		return uuid.Nil, "", errInvalidToken
	case err != nil:
		return uuid.Nil, "", err
	case kind != purpose, usedAt != nil, !now.Before(expires), !auth.SecretMatches(secret, hash):
		return uuid.Nil, "", errInvalidToken
	}
	if mark {
		_, err = tx.Exec(ctx, "UPDATE user_tokens SET used_at = $2 WHERE id = $1", id, now)
	}
	return userID, email, err
}

// ConfirmReset spends a reset token: it sets the new password, ends every session of the
// user, and spends the user's other reset links. It also verifies the email, since the
// link reached it.
func (s *Recovery) ConfirmReset(ctx context.Context, in ResetConfirm) error {
	tenantID, id, secret, ok := auth.ParseTenantToken(resetPrefix, in.Token)
	if !ok {
		return errInvalidToken
	}
	// Checked before the password is hashed, so a bad token costs no hash; checked again,
	// under the row lock, when it is spent.
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, _, err := s.spend(ctx, tx, id, secret, purposeReset, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("recovery.confirm_reset %s: %w", id, err)
	}
	hash, err := s.Passwords.Hash(ctx, in.NewPassword)
	if err != nil {
		return fmt.Errorf("recovery.confirm_reset %s: %w", id, err)
	}
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		userID, email, err := s.spend(ctx, tx, id, secret, purposeReset, true)
		if err != nil {
			return err
		}
		now := s.Clock.Now()
		ct, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = $3,
		                         email_verified_at = CASE WHEN email = $4 THEN coalesce(email_verified_at, $3) ELSE email_verified_at END
		                         WHERE id = $1`, userID, hash, now, email)
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return errInvalidToken
		}
		if _, err := tx.Exec(ctx, `UPDATE user_tokens SET used_at = $2
		                            WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL`, userID, now); err != nil {
			return err
		}
		if err := s.Sessions.RevokeUser(ctx, tx, userID); err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, "user.password_reset", map[string]uuid.UUID{"id": userID})
	})
	if err != nil {
		return fmt.Errorf("recovery.confirm_reset %s: %w", id, err)
	}
	return nil
}

// VerifyEmail spends a verification token: the user's email is verified, if it is still the
// address the link was mailed to.
func (s *Recovery) VerifyEmail(ctx context.Context, in VerifyInput) error {
	tenantID, id, secret, ok := auth.ParseTenantToken(verificationPrefix, in.Token)
	if !ok {
		return errInvalidToken
	}
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		userID, email, err := s.spend(ctx, tx, id, secret, purposeVerification, true)
		if err != nil {
			return err
		}
		ct, err := tx.Exec(ctx, `UPDATE users SET email_verified_at = coalesce(email_verified_at, $3)
		                          WHERE id = $1 AND email = $2`, userID, email, s.Clock.Now())
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return errInvalidToken
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovery.verify_email %s: %w", id, err)
	}
	return nil
}
