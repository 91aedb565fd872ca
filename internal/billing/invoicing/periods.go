package invoicing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/clock"
)

// TenantInfo is what billing needs to know of a tenant.
type TenantInfo struct {
	ID                   uuid.UUID
	Plan                 string
	Timezone             string
	CreatedAt            time.Time
	DefaultPaymentMethod string
}

// Tenants answers tenant facts; the module that owns tenants provides it.
type Tenants interface {
	BillingInfo(ctx context.Context, id uuid.UUID) (TenantInfo, error)
}

// Periods places a tenant's billing periods: monthly, from the day of the month it was
// created, at midnight in its time zone.
type Periods struct {
	Tenants Tenants
	Clock   clock.Clock
}

// at answers the tenant and its period containing t.
func (s *Periods) at(ctx context.Context, tenantID uuid.UUID, t time.Time) (TenantInfo, *time.Location, pricing.Period, error) {
	ti, err := s.Tenants.BillingInfo(ctx, tenantID)
	if err != nil {
		return ti, nil, pricing.Period{}, fmt.Errorf("periods: tenant %s: %w", tenantID, err)
	}
	loc, err := time.LoadLocation(ti.Timezone)
	if err != nil {
		return ti, nil, pricing.Period{}, fmt.Errorf("periods: tenant %s time zone %q: %w", tenantID, ti.Timezone, err)
	}
	return ti, loc, pricing.PeriodAt(ti.CreatedAt, loc, t), nil
}

// Current answers the tenant's plan and the period it is in now (metering.Periods).
func (s *Periods) Current(ctx context.Context, tenantID uuid.UUID) (string, pricing.Period, error) {
	ti, _, p, err := s.at(ctx, tenantID, s.Clock.Now())
	return ti.Plan, p, err
}

// closeLock is the advisory lock between closing a tenant's period (exclusive) and ingesting
// its usage (shared).
const closeLock = "hashtextextended('billing-close/' || $1::text, 0)"

// FinalizedUntil takes the closer's lock shared for the rest of tx and answers where the
// tenant's last invoiced period ends (metering.Periods).
func (s *Periods) FinalizedUntil(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID) (*time.Time, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared("+closeLock+")", tenantID); err != nil {
		return nil, fmt.Errorf("periods.finalized_until tenant %s: lock: %w", tenantID, err)
	}
	var until *time.Time
	if err := tx.QueryRow(ctx, "SELECT max(period_end) FROM invoices").Scan(&until); err != nil {
		return nil, fmt.Errorf("periods.finalized_until tenant %s: %w", tenantID, err)
	}
	return until, nil
}
