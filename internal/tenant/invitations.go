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
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Token prefixes of the links mailed: each kind of token is good for its own endpoint only.
const (
	invitationPrefix   = "inv_"
	resetPrefix        = "rst_"
	verificationPrefix = "vfy_"
)

// InvitationTTL is how long an invitation's link works.
const InvitationTTL = 7 * 24 * time.Hour

// errInvalidToken is the one answer for a token used, revoked, expired or never issued: a
// caller learns nothing about which.
var errInvalidToken = errs.E(errs.Invalid, "invalid_token", "the link is invalid, expired or already used")

// Status of an invitation, as listed.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationRevoked  = "revoked"
	InvitationExpired  = "expired"
)

// Invitation asks someone to join a tenant with a role. Its token is never shown: only the
// mail carries it.
type Invitation struct {
	ID         uuid.UUID  `json:"id"`
	Email      string     `json:"email"`
	Role       auth.Role  `json:"role"`
	Status     string     `json:"status"`
	InvitedBy  uuid.UUID  `json:"invited_by"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

const invitationColumns = "id, email, role, invited_by, expires_at, accepted_at, revoked_at, created_at, updated_at"

func scanInvitation(row pgx.Row, now time.Time) (Invitation, error) {
	var i Invitation
	err := row.Scan(&i.ID, &i.Email, &i.Role, &i.InvitedBy, &i.ExpiresAt, &i.AcceptedAt, &i.RevokedAt, &i.CreatedAt, &i.UpdatedAt)
	if postgres.IsNoRows(err) {
		return Invitation{}, errs.NotFoundf("no such invitation")
	}
	i.ExpiresAt, i.CreatedAt, i.UpdatedAt = i.ExpiresAt.UTC(), i.CreatedAt.UTC(), i.UpdatedAt.UTC()
	switch {
	case i.AcceptedAt != nil:
		i.Status = InvitationAccepted
		*i.AcceptedAt = i.AcceptedAt.UTC()
	case i.RevokedAt != nil:
		i.Status = InvitationRevoked
		*i.RevokedAt = i.RevokedAt.UTC()
	case !now.Before(i.ExpiresAt):
		i.Status = InvitationExpired
	default:
		i.Status = InvitationPending
	}
	return i, err
}

// InvitationInput is the body of POST /v1/invitations.
type InvitationInput struct {
	Email string    `json:"email"`
	Role  auth.Role `json:"role"`
}

// Validate checks every field.
func (in InvitationInput) Validate() error {
	var f errs.Fields
	checkEmail(&f, in.Email)
	if _, ok := auth.ParseTenantRole(string(in.Role)); !ok {
		f.Add("role", "must be owner, admin or member")
	}
	return f.Err()
}

// AcceptInput is the body of POST /v1/invitations/accept.
type AcceptInput struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// Validate checks every field.
func (in AcceptInput) Validate() error {
	var f errs.Fields
	checkToken(&f, "token", in.Token)
	checkPassword(&f, "password", in.Password)
	return f.Err()
}

func checkToken(f *errs.Fields, field, token string) {
	if token == "" || len(token) > 200 {
		f.Add(field, "is required, the token of the link that was mailed")
	}
}

// AcceptResult answers an accepted invitation: the new user and their tokens.
type AcceptResult struct {
	User User `json:"user"`
	auth.TokenPair
}

var errInvitationPending = errs.E(errs.Conflict, "conflict", "an invitation for this email is pending: resend it, or revoke it first")

// Invitations invites people into a tenant by mail.
type Invitations struct {
	DB        *postgres.DB
	Outbox    *events.Outbox
	Mail      *mail.Outbox
	Sessions  *auth.Sessions
	Passwords *auth.Passwords
	Clock     clock.Clock
}

// Create invites in.Email with in.Role, which may not be above the caller's, and mails the
// link. An email already a member is 409 email_taken; one with a pending invitation, 409
// conflict (resend that one). An expired invitation for the email is retired on the way.
func (s *Invitations) Create(ctx context.Context, p auth.Principal, in InvitationInput) (Invitation, error) {
	if err := auth.CheckGrant(p, in.Role); err != nil {
		return Invitation{}, err
	}
	email := auth.NormalizeEmail(in.Email)
	now := s.Clock.Now()
	var inv Invitation
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		var member bool
		var inviter string
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM users WHERE email = $1),
		                                coalesce((SELECT email FROM users WHERE id = $2), '')`, email, p.UserID).Scan(&member, &inviter)
		switch {
		case err != nil:
			return err
		case member:
			return errEmailTaken
		}
		if _, err := tx.Exec(ctx, `UPDATE invitations SET revoked_at = $2, updated_at = $2
		                            WHERE email = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $2`, email, now); err != nil {
			return err
		}
		id, token, hash, err := auth.NewTenantToken(invitationPrefix, p.TenantID)
		if err != nil {
			return err
		}
		inv, err = scanInvitation(tx.QueryRow(ctx, `
			INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, expires_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING `+invitationColumns,
			p.TenantID, id, email, in.Role, hash, p.UserID, now.Add(InvitationTTL), now), now)
		if postgres.IsUniqueViolation(err, "invitations_pending_email_key") {
			return errInvitationPending
		}
		if err != nil {
			return err
		}
		if err := s.mailInvitation(ctx, tx, p.TenantID, inv, inviter, token); err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, p.TenantID, "invitation.created", inv)
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("invitations.create tenant %s: %w", p.TenantID, err)
	}
	return inv, nil
}

func (s *Invitations) mailInvitation(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, inv Invitation, inviter, token string) error {
	if inviter == "" {
		inviter = "An administrator"
	}
	_, err := s.Mail.Enqueue(ctx, tx, tenantID, mail.Request{
		Template: mail.Invitation, To: inv.Email, Token: token,
		Data: map[string]string{"inviter": inviter, "role": string(inv.Role), "expires_at": inv.ExpiresAt.Format("2 January 2006, 15:04 MST")},
	})
	return err
}

// List answers the tenant's invitations, newest first.
func (s *Invitations) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]Invitation, error) {
	cursor := page.Before()
	now := s.Clock.Now()
	var out []Invitation
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, "SELECT "+invitationColumns+" FROM invitations WHERE id < $1 ORDER BY id DESC LIMIT $2", cursor, page.Limit+1)
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invitation, error) { return scanInvitation(r, now) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("invitations.list tenant %s: %w", tenantID, err)
	}
	return out, nil
}

// lock reads an invitation for a change by p, who must rank at least its role.
func lockInvitation(ctx context.Context, tx pgx.Tx, p auth.Principal, id uuid.UUID, now time.Time) (Invitation, error) {
	inv, err := scanInvitation(tx.QueryRow(ctx, "SELECT "+invitationColumns+" FROM invitations WHERE id = $1 FOR UPDATE", id), now)
	if err != nil {
		return Invitation{}, err
	}
	return inv, auth.CheckActOn(p, inv.Role)
}

// Revoke withdraws an invitation: its link stops working. Revoking one revoked already is
// fine; an accepted one is a 409.
func (s *Invitations) Revoke(ctx context.Context, p auth.Principal, id uuid.UUID) error {
	now := s.Clock.Now()
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		inv, err := lockInvitation(ctx, tx, p, id, now)
		switch {
		case err != nil:
			return err
		case inv.Status == InvitationRevoked:
			return nil
		case inv.Status == InvitationAccepted:
			return errs.E(errs.Conflict, "conflict", "the invitation was accepted already")
		}
		inv, err = scanInvitation(tx.QueryRow(ctx, "UPDATE invitations SET revoked_at = $2, updated_at = $2 WHERE id = $1 RETURNING "+invitationColumns, id, now), now)
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, p.TenantID, "invitation.revoked", inv)
	})
	if err != nil {
		return fmt.Errorf("invitations.revoke %s: %w", id, err)
	}
	return nil
}

// Resend mails a pending or expired invitation again with a new link, good for another
// InvitationTTL; the link mailed before stops working (only its hash was kept, so the new
// mail cannot carry the old token).
func (s *Invitations) Resend(ctx context.Context, p auth.Principal, id uuid.UUID) (Invitation, error) {
	now := s.Clock.Now()
	var inv Invitation
	err := s.DB.InTenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		cur, err := lockInvitation(ctx, tx, p, id, now)
		switch {
		case err != nil:
			return err
		case cur.Status == InvitationAccepted || cur.Status == InvitationRevoked:
			return errs.E(errs.Conflict, "conflict", "the invitation was %s: invite again instead", cur.Status)
		}
		token, hash, err := auth.NewTenantTokenFor(invitationPrefix, p.TenantID, id)
		if err != nil {
			return err
		}
		inv, err = scanInvitation(tx.QueryRow(ctx, `
			UPDATE invitations SET token_hash = $2, expires_at = $3, updated_at = $4 WHERE id = $1 RETURNING `+invitationColumns,
			id, hash, now.Add(InvitationTTL), now), now)
		if err != nil {
			return err
		}
		var inviter string
		if err := tx.QueryRow(ctx, "SELECT coalesce((SELECT email FROM users WHERE id = $1), '')", p.UserID).Scan(&inviter); err != nil {
			return err
		}
		return s.mailInvitation(ctx, tx, p.TenantID, inv, inviter, token)
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("invitations.resend %s: %w", id, err)
	}
	return inv, nil
}

// Accept spends an invitation's token: it creates the user, in the invitation's tenant with
// its role, with the email counted as verified (the mail reached them), and signs them in.
// A token used, revoked, expired or unknown is one 400 invalid_token; so is one whose
// inviter has since lost the right to grant its role (deleted, or demoted below it). Two
// accepts at once: the row lock lets one win, and the other finds it accepted.
func (s *Invitations) Accept(ctx context.Context, in AcceptInput) (AcceptResult, error) {
	tenantID, id, secret, ok := auth.ParseTenantToken(invitationPrefix, in.Token)
	if !ok {
		return AcceptResult{}, errInvalidToken
	}
	// Checked before the password is hashed, so a bad token costs no hash; checked again
	// under the row lock below.
	if _, err := s.check(ctx, tenantID, id, secret, false, nil); err != nil {
		return AcceptResult{}, err
	}
	hash, err := s.Passwords.Hash(ctx, in.Password)
	if err != nil {
		return AcceptResult{}, fmt.Errorf("invitations.accept %s: %w", id, err)
	}
	var res AcceptResult
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		inv, err := s.check(ctx, tenantID, id, secret, true, tx)
		if err != nil {
			return err
		}
		now := s.Clock.Now()
		u, err := insertUser(ctx, tx, tenantID, uuid.Must(uuid.NewV7()), inv.Email, hash, inv.Role, now)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET email_verified_at = $2 WHERE id = $1", u.ID, now); err != nil {
			return err
		}
		inv, err = scanInvitation(tx.QueryRow(ctx, `UPDATE invitations SET accepted_at = $2, accepted_user_id = $3, updated_at = $2
		                                              WHERE id = $1 RETURNING `+invitationColumns, id, now, u.ID), now)
		if err != nil {
			return err
		}
		if err := s.Outbox.Append(ctx, tx, tenantID, "user.created", u); err != nil {
			return err
		}
		if err := s.Outbox.Append(ctx, tx, tenantID, "invitation.accepted", map[string]any{"invitation": inv, "user_id": u.ID}); err != nil {
			return err
		}
		pair, err := s.Sessions.Issue(ctx, tx, tenantID, u.ID, u.Role)
		res = AcceptResult{User: u, TokenPair: pair}
		return err
	})
	if err != nil {
		return AcceptResult{}, fmt.Errorf("invitations.accept %s: %w", id, err)
	}
	return res, nil
}

// check answers the invitation a token names if it may be accepted now: pending, its secret
// right, its tenant active, its inviter still able to grant its role. With lock it runs in
// tx and locks the row.
func (s *Invitations) check(ctx context.Context, tenantID, id uuid.UUID, secret []byte, lock bool, tx pgx.Tx) (Invitation, error) {
	q := `SELECT ` + invitationColumns + `, token_hash,
	             (SELECT role FROM users WHERE id = i.invited_by), (SELECT status FROM tenants WHERE id = i.tenant_id)
	        FROM invitations i WHERE id = $1`
	if lock {
		q += " FOR UPDATE OF i"
	}
	var (
		inv          Invitation
		hash         []byte
		inviterRole  *auth.Role
		tenantStatus *string
		now          = s.Clock.Now()
	)
	scan := func(row pgx.Row) error {
		var err error
		inv, err = scanInvitation(scanExtra{row, []any{&hash, &inviterRole, &tenantStatus}}, now)
		return err
	}
	var err error
	if lock {
		err = scan(tx.QueryRow(ctx, q, id))
	} else {
		b := &pgx.Batch{}
		b.Queue(q, id).QueryRow(scan)
		err = s.DB.InTenantRead(ctx, tenantID, b)
	}
	switch {
	case errs.Is(err, errs.NotFound):
		return Invitation{}, errInvalidToken
	case err != nil:
		return Invitation{}, err
	case !auth.SecretMatches(secret, hash), inv.Status != InvitationPending,
		inviterRole == nil || !auth.MayActOn(*inviterRole, inv.Role):
		return Invitation{}, errInvalidToken
	case tenantStatus != nil && *tenantStatus == StatusSuspended:
		return Invitation{}, auth.ErrTenantSuspended
	case tenantStatus == nil || *tenantStatus != StatusActive:
		return Invitation{}, errInvalidToken // a tenant on its way out takes no one in
	}
	return inv, nil
}

// scanExtra scans a row's leading columns into scanInvitation's destinations and the rest
// into extra.
type scanExtra struct {
	row   pgx.Row
	extra []any
}

func (s scanExtra) Scan(dest ...any) error { return s.row.Scan(append(dest, s.extra...)...) }
