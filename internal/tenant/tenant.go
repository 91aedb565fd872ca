// Package tenant owns tenants, their users and projects (the sample tenant-owned resource),
// and the operator's view of tenants.
package tenant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/auth"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/ratelimit"
)

// Status of a tenant. A suspended tenant is refused on every tenant endpoint.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	// StatusPendingDeletion: its owner asked for deletion; restorable until PurgeAfter.
	StatusPendingDeletion = "pending_deletion"
	// StatusDeleted: purged; the row is a tombstone for the invoices and payments kept.
	StatusDeleted = "deleted"
)

// Tenant is a customer organisation.
type Tenant struct {
	ID        uuid.UUID       `json:"id"`
	Name      string          `json:"name"`
	Slug      string          `json:"slug"`
	Plan      string          `json:"plan"`
	Status    string          `json:"status"`
	Timezone  string          `json:"timezone"`
	RateLimit *auth.RateLimit `json:"rate_limit"` // the operator's override of the plan's limit
	// DefaultPaymentMethod is the Stripe payment method invoices are collected from.
	DefaultPaymentMethod *string    `json:"default_payment_method"`
	PurgeAfter           *time.Time `json:"purge_after,omitempty"` // while pending_deletion
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`
}

const tenantColumns = "id, name, slug, plan_code, status, timezone, rate_limit, default_payment_method, purge_after, created_at, updated_at"

func scanTenant(row pgx.Row) (Tenant, error) {
	var t Tenant
	err := row.Scan(&t.ID, &t.Name, &t.Slug, &t.Plan, &t.Status, &t.Timezone, &t.RateLimit, &t.DefaultPaymentMethod, &t.PurgeAfter, &t.CreatedAt, &t.UpdatedAt)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	if t.PurgeAfter != nil {
		pa := t.PurgeAfter.UTC()
		t.PurgeAfter = &pa
	}
	return t, err
}

// TenantUpdate is the body of PATCH /v1/tenant.
type TenantUpdate struct {
	Name                 *string `json:"name"`
	Timezone             *string `json:"timezone"`
	DefaultPaymentMethod *string `json:"default_payment_method"`
}

// Validate checks the fields present.
func (u TenantUpdate) Validate() error {
	var f errs.Fields
	if u.Name != nil && (*u.Name == "" || utf8.RuneCountInString(*u.Name) > 200) {
		f.Add("name", "must be 1 to 200 characters")
	}
	if pm := u.DefaultPaymentMethod; pm != nil && (*pm == "" || len(*pm) > 255 || strings.ContainsAny(*pm, " \t\n")) {
		f.Add("default_payment_method", "must be a Stripe payment method id such as pm_card_visa")
	}
	if u.Timezone != nil {
		if _, err := time.LoadLocation(*u.Timezone); err != nil || *u.Timezone == "" || *u.Timezone == "Local" {
			f.Add("timezone", "must be an IANA time zone such as Europe/Paris")
		}
	}
	return f.Err()
}

// AdminUpdate is the body of PATCH /v1/admin/tenants/{id}. RateLimit distinguishes absent
// (leave as is) from null (clear the override, fall back to the plan).
type AdminUpdate struct {
	Plan      *string         `json:"plan"`
	Status    *string         `json:"status"`
	RateLimit json.RawMessage `json:"rate_limit"`

	rateLimit *auth.RateLimit
}

// Validate checks the fields present and decodes the rate limit.
func (u *AdminUpdate) Validate() error {
	var f errs.Fields
	if u.Plan != nil && *u.Plan == "" {
		f.Add("plan", "must name a plan")
	}
	if u.Status != nil && *u.Status != StatusActive && *u.Status != StatusSuspended {
		f.Add("status", "must be active or suspended")
	}
	if len(u.RateLimit) > 0 && !bytes.Equal(u.RateLimit, []byte("null")) {
		var rl auth.RateLimit
		if err := httpx.DecodeBytes(u.RateLimit, &rl); err != nil {
			f.Add("rate_limit", "must be {requests_per_second, burst, max_concurrent?} or null")
		} else if !f.AddFrom(ratelimit.CheckRateLimit("rate_limit", rl)) {
			u.rateLimit = &rl
		}
	}
	return f.Err()
}

// Tenants serves a tenant its own record and operators every tenant.
type Tenants struct {
	DB        *postgres.DB
	Outbox    *events.Outbox
	Directory *Directory
}

// Get answers a tenant's record, in one round trip.
func (s *Tenants) Get(ctx context.Context, id uuid.UUID) (Tenant, error) {
	var t Tenant
	b := &pgx.Batch{}
	b.Queue("SELECT "+tenantColumns+" FROM tenants WHERE id = $1", id).QueryRow(func(row pgx.Row) (err error) {
		t, err = scanTenant(row)
		if postgres.IsNoRows(err) {
			return errs.NotFoundf("no tenant %s", id)
		}
		return err
	})
	if err := s.DB.InTenantRead(ctx, id, b); err != nil {
		return Tenant{}, fmt.Errorf("tenants.get %s: %w", id, err)
	}
	return t, nil
}

// Update changes a tenant's own settings.
func (s *Tenants) Update(ctx context.Context, id uuid.UUID, u TenantUpdate) (Tenant, error) {
	var t Tenant
	err := s.DB.InTenantTx(ctx, id, func(tx pgx.Tx) (err error) {
		t, err = scanTenant(tx.QueryRow(ctx, `
			UPDATE tenants SET name = coalesce($2, name), timezone = coalesce($3, timezone),
			       default_payment_method = coalesce($4, default_payment_method), updated_at = now()
			 WHERE id = $1 RETURNING `+tenantColumns, id, u.Name, u.Timezone, u.DefaultPaymentMethod))
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, id, "tenant.updated", t)
	})
	s.Directory.Invalidate(id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenants.update %s: %w", id, err)
	}
	return t, nil
}

// List answers every tenant, for operators, through the named cross-tenant function.
func (s *Tenants) List(ctx context.Context, page httpx.Page) ([]Tenant, error) {
	var after *uuid.UUID
	if page.Cursor != uuid.Nil {
		after = &page.Cursor
	}
	rows, _ := s.DB.Pool.Query(ctx, "SELECT "+tenantColumns+" FROM app.platform_tenants($1, $2)", after, page.Limit+1)
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, fmt.Errorf("tenants.list: %w", err)
	}
	return ts, nil
}

// AdminUpdate applies an operator's change of plan, status or rate limit. The change holds on
// this replica as soon as it is answered: the directory entry is dropped before returning.
func (s *Tenants) AdminUpdate(ctx context.Context, id uuid.UUID, u *AdminUpdate) (Tenant, error) {
	var t Tenant
	err := s.DB.InTenantTx(ctx, id, func(tx pgx.Tx) (err error) {
		clearLimit := bytes.Equal(u.RateLimit, []byte("null"))
		t, err = scanTenant(tx.QueryRow(ctx, `
			UPDATE tenants SET plan_code = coalesce($2, plan_code),
			                   status = coalesce($3, status),
			                   rate_limit = CASE WHEN $5 THEN NULL ELSE coalesce($4, rate_limit) END,
			                   updated_at = now()
			 WHERE id = $1 RETURNING `+tenantColumns, id, u.Plan, u.Status, u.rateLimit, clearLimit))
		switch {
		case postgres.IsNoRows(err):
			return errs.NotFoundf("no tenant %s", id)
		case postgres.IsForeignKeyViolation(err, ""):
			return errs.Field("plan", "there is no plan "+*u.Plan)
		case err != nil:
			return err
		}
		return s.Outbox.Append(ctx, tx, id, "tenant.updated", t)
	})
	s.Directory.Invalidate(id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenants.admin_update %s: %w", id, err)
	}
	return t, nil
}
