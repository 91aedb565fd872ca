package invoicing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/cache"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
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

// Periods keeps a tenant's billing periods: monthly, from the day of the month it was
// created, at midnight in its time zone. Each is stored when it begins, so its bounds never
// move: a change of time zone applies from the next period (pricing.NextPeriod).
type Periods struct {
	db      *postgres.DB
	tenants Tenants
	clock   clock.Clock
	current *cache.Cache[uuid.UUID, pricing.Period]
}

// currentTTL bounds how long a replica answers a tenant's current period from memory. The
// bounds of a period never change, so the cache only needs to notice that one has ended.
const currentTTL = time.Minute

// NewPeriods returns the periods stored in db of the tenants tenants describes.
func NewPeriods(db *postgres.DB, tenants Tenants, clk clock.Clock) *Periods {
	s := &Periods{db: db, tenants: tenants, clock: clk}
	s.current = cache.New(clk, currentTTL, func(ctx context.Context, tenantID uuid.UUID) (pricing.Period, error) {
		ti, err := s.tenant(ctx, tenantID)
		if err != nil {
			return pricing.Period{}, err
		}
		return s.ensure(ctx, ti, s.clock.Now())
	})
	return s
}

// Current answers the tenant's plan and the period it is in now (metering.Periods).
func (s *Periods) Current(ctx context.Context, tenantID uuid.UUID) (string, pricing.Period, error) {
	ti, p, err := s.now(ctx, tenantID)
	return ti.Plan, p, err
}

// now answers the tenant and the period it is in now, from memory while that period lasts.
func (s *Periods) now(ctx context.Context, tenantID uuid.UUID) (TenantInfo, pricing.Period, error) {
	ti, err := s.tenant(ctx, tenantID)
	if err != nil {
		return ti, pricing.Period{}, err
	}
	p, err := s.current.Get(ctx, tenantID)
	if err == nil && !s.clock.Now().Before(p.End) {
		s.current.Invalidate(tenantID) // it has ended: the next one begins
		p, err = s.current.Get(ctx, tenantID)
	}
	return ti, p, err
}

func (s *Periods) tenant(ctx context.Context, tenantID uuid.UUID) (TenantInfo, error) {
	ti, err := s.tenants.BillingInfo(ctx, tenantID)
	if err != nil {
		return ti, fmt.Errorf("periods: tenant %s: %w", tenantID, err)
	}
	return ti, nil
}

// ensure stores the tenant's periods up to the one containing t, and answers that one. The
// first begins on the tenant's first day, or where its last invoice ends (a tenant billed
// before periods were stored); each next one begins where the last ended, placed in the zone
// the tenant has when it is stored. A lock per tenant (periodsLock) keeps two replicas from
// chaining two different next periods.
func (s *Periods) ensure(ctx context.Context, ti TenantInfo, t time.Time) (pricing.Period, error) {
	loc, err := time.LoadLocation(ti.Timezone)
	if err != nil {
		return pricing.Period{}, fmt.Errorf("periods: tenant %s time zone %q: %w", ti.ID, ti.Timezone, err)
	}
	var cur pricing.Period
	err = s.db.InTenantTx(ctx, ti.ID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+periodsLock+")", ti.ID); err != nil {
			return err
		}
		var last *pricing.Period
		p, err := scanPeriod(tx.QueryRow(ctx, lastPeriodQuery))
		if err == nil {
			last = &p
		} else if !postgres.IsNoRows(err) {
			return err
		}
		var invoicedUntil *time.Time
		if last == nil {
			if err := tx.QueryRow(ctx, invoicedUntilQuery).Scan(&invoicedUntil); err != nil {
				return err
			}
		}
		var next []pricing.Period
		next, cur = chain(ti, loc, last, invoicedUntil, t)
		for _, p := range next {
			if _, err := tx.Exec(ctx, insertPeriod, ti.ID, p.Start, p.End, loc.String(), s.clock.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return pricing.Period{}, fmt.Errorf("periods.ensure tenant %s until %s: %w", ti.ID, t.Format(time.RFC3339), err)
	}
	return cur, nil
}

// periodsLock is the advisory lock, per tenant, under which its next periods are stored.
// The closer takes it after the close lock (closeLock), as ingestion does when it checks
// quotas in its transaction: taken in one order only, the two cannot deadlock.
const periodsLock = "hashtextextended('billing-periods/' || $1::text, 0)"

// The tenant's last stored period, and where its invoices end: what chain starts from.
const (
	lastPeriodQuery    = "SELECT period_start, period_end FROM billing_periods ORDER BY period_start DESC LIMIT 1"
	invoicedUntilQuery = "SELECT max(period_end) FROM invoices"
	insertPeriod       = `INSERT INTO billing_periods (tenant_id, period_start, period_end, timezone, created_at)
		VALUES ($1, $2, $3, $4, $5)`
)

// chain answers the periods to store after last, the tenant's last stored period, so that one
// contains t, and the period that contains t. With no period stored (last nil), the first
// begins on the tenant's first day, or where its invoices end (invoicedUntil).
func chain(ti TenantInfo, loc *time.Location, last *pricing.Period, invoicedUntil *time.Time, t time.Time) (next []pricing.Period, cur pricing.Period) {
	if last == nil {
		cur = pricing.PeriodAt(ti.CreatedAt, loc, ti.CreatedAt)
		if invoicedUntil != nil {
			cur = pricing.NextPeriod(ti.CreatedAt, loc, *invoicedUntil)
		}
		next = append(next, cur)
	} else {
		cur = *last
	}
	for !t.Before(cur.End) {
		cur = pricing.NextPeriod(ti.CreatedAt, loc, cur.End)
		next = append(next, cur)
	}
	for i := range next {
		next[i].Start, next[i].End = next[i].Start.UTC(), next[i].End.UTC()
	}
	return next, pricing.Period{Start: cur.Start.UTC(), End: cur.End.UTC()}
}

func scanPeriod(row pgx.Row) (pricing.Period, error) {
	var p pricing.Period
	err := row.Scan(&p.Start, &p.End)
	p.Start, p.End = p.Start.UTC(), p.End.UTC()
	return p, err
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
