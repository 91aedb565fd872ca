package metering

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Entitlement is a quota's standing in the current period.
type Entitlement struct {
	Meter       string      `json:"meter"`
	Limit       int64       `json:"limit"`
	Usage       json.Number `json:"usage"`
	Remaining   json.Number `json:"remaining"`
	HasAccess   bool        `json:"has_access"`
	Enforcement string      `json:"enforcement"`
	pricing.Period
}

// Quotas answers a tenant's usage against its plan's quotas in the current period, and emits
// usage.quota_threshold_reached as usage crosses them.
type Quotas struct {
	DB      *postgres.DB
	Outbox  *events.Outbox
	Plans   *plans.Plans
	Usage   *Usage
	Periods Periods
}

// current answers the tenant's plan and current period.
func (s *Quotas) current(ctx context.Context, tenantID uuid.UUID) (plans.Plan, pricing.Period, error) {
	code, p, err := s.Periods.Current(ctx, tenantID)
	if err != nil {
		return plans.Plan{}, p, err
	}
	plan, err := s.Plans.Get(ctx, code)
	return plan, p, err
}

// Entitlements answers each quota of the tenant's plan against the current period's usage.
func (s *Quotas) Entitlements(ctx context.Context, tenantID uuid.UUID) ([]Entitlement, error) {
	plan, p, err := s.current(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := []Entitlement{}
	for meter, q := range plan.Quotas {
		u, err := s.Usage.Total(ctx, tenantID, meter, p)
		if err != nil {
			return nil, err
		}
		limit := decimal.NewFromInt(q.Limit)
		remaining := decimal.Max(limit.Sub(u.Quantity), decimal.Zero)
		out = append(out, Entitlement{
			Meter: meter, Limit: q.Limit, Enforcement: q.Enforcement, Period: p,
			Usage: json.Number(u.Quantity.String()), Remaining: json.Number(remaining.String()),
			HasAccess: q.Enforcement == "soft" || u.Quantity.LessThan(limit),
		})
	}
	return out, nil
}

// CheckQuotas emits the threshold events of the given meters' quotas, after usage of them
// was stored.
func (s *Quotas) CheckQuotas(ctx context.Context, tenantID uuid.UUID, meters []string) error {
	plan, p, err := s.current(ctx, tenantID)
	if err != nil {
		return err
	}
	for _, m := range meters {
		q, ok := plan.Quotas[m]
		if !ok {
			continue
		}
		u, err := s.Usage.Total(ctx, tenantID, m, p)
		if err != nil {
			return err
		}
		if err := s.Thresholds(ctx, tenantID, m, q, p, u.Quantity); err != nil {
			return err
		}
	}
	return nil
}

// thresholds are the shares of a quota whose crossing emits usage.quota_threshold_reached.
var thresholds = []int64{80, 100}

// Thresholds emits usage.quota_threshold_reached once per threshold and period when usage has
// reached it. The outbox itself remembers what was emitted, under a transaction-scoped lock
// per tenant and meter so two replicas do not both emit.
func (s *Quotas) Thresholds(ctx context.Context, tenantID uuid.UUID, meter string, quota plans.Quota, p pricing.Period, usage decimal.Decimal) error {
	if quota.Limit <= 0 {
		return nil
	}
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		for _, pct := range thresholds {
			if usage.Mul(decimal.NewFromInt(100)).LessThan(decimal.NewFromInt(quota.Limit * pct)) {
				break
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
				fmt.Sprintf("threshold/%s/%s", tenantID, meter)); err != nil {
				return err
			}
			var seen bool
			err := tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT FROM outbox WHERE type = 'usage.quota_threshold_reached'
				                  AND data->>'meter' = $1 AND (data->>'threshold')::int = $2
				                  AND (data->>'period_start')::timestamptz = $3)`, meter, pct, p.Start).Scan(&seen)
			if err != nil || seen {
				if err != nil {
					return err
				}
				continue
			}
			err = s.Outbox.Append(ctx, tx, tenantID, "usage.quota_threshold_reached", map[string]any{
				"meter": meter, "threshold": pct, "limit": quota.Limit, "usage": usage,
				"enforcement": quota.Enforcement, "period_start": p.Start, "period_end": p.End,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("thresholds tenant %s meter %s: %w", tenantID, meter, err)
	}
	return nil
}
