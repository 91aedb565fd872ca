package invoicing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/billing/payments"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// stripeEventWindow is how far back Stripe accepts a meter event's timestamp.
const stripeEventWindow = 35 * 24 * time.Hour

// Reporter reports usage to Stripe as Billing Meter Events, per tenant, meter and closed
// 15-minute bucket, so that Stripe's total for a period equals ours. A ledger records the
// running total reported per bucket; each report sends the difference under an identifier
// made of (tenant, meter, bucket, total reported before it): a re-run after a crash sends the
// same identifier, which Stripe drops, and late usage goes out as a correction with an
// identifier of its own. Stripe forgets identifiers after 24 hours; the ledger does not.
type Reporter struct {
	DB        *postgres.DB
	Clock     clock.Clock
	Stripe    *payments.Stripe // nil: payments are disabled, nothing is reported
	Customers *payments.Customers
	Logger    *slog.Logger
}

type pendingReport struct {
	meter    string
	bucket   time.Time
	value    decimal.Decimal
	reported decimal.Decimal
}

// Run reports every closed bucket whose total differs from what was reported.
func (r *Reporter) Run(ctx context.Context) (int, error) {
	if r.Stripe == nil {
		return 0, nil
	}
	var after *uuid.UUID
	sent := 0
	for {
		rows, _ := r.DB.Pool.Query(ctx, "SELECT tenant_id FROM app.billing_tenants($1, 200)", after)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return sent, err
		}
		for _, id := range ids {
			n, err := r.reportTenant(ctx, id)
			sent += n
			if err != nil {
				r.Logger.WarnContext(ctx, "invoicing: reporting usage to Stripe", slog.String("tenant_id", id.String()), slog.String("error", err.Error()))
			}
		}
		after = &ids[len(ids)-1]
	}
}

func (r *Reporter) reportTenant(ctx context.Context, tenantID uuid.UUID) (int, error) {
	now := r.Clock.Now()
	var todo []pendingReport
	b := &pgx.Batch{}
	b.Queue(`
		SELECT u.meter_key, u.bucket_start, sum(u.value)::text, coalesce(l.reported, 0)::text
		  FROM usage_rollups u
		  LEFT JOIN stripe_usage_reports l
		    ON l.meter_key = u.meter_key AND l.bucket_start = u.bucket_start
		 WHERE u.bucket_start <= $1 AND u.bucket_start > $2
		 GROUP BY u.meter_key, u.bucket_start, l.reported
		HAVING sum(u.value) <> coalesce(l.reported, 0)
		 ORDER BY u.bucket_start, u.meter_key`, now.Add(-metering.RollupGranule), now.Add(-stripeEventWindow)).
		Query(func(rows pgx.Rows) error {
			var err error
			todo, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (pendingReport, error) {
				var p pendingReport
				var v, rep string
				if err := row.Scan(&p.meter, &p.bucket, &v, &rep); err != nil {
					return p, err
				}
				p.value, p.reported = decimal.RequireFromString(v), decimal.RequireFromString(rep)
				return p, nil
			})
			return err
		})
	if err := r.DB.InTenantRead(ctx, tenantID, b); err != nil {
		return 0, fmt.Errorf("report tenant %s: pending buckets: %w", tenantID, err)
	}
	if len(todo) == 0 {
		return 0, nil
	}
	customer, err := r.Customers.Of(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, p := range todo {
		identifier := fmt.Sprintf("%s:%s:%d:%s", tenantID, p.meter, p.bucket.Unix(), p.reported)
		err := r.Stripe.SendMeterEvent(ctx, p.meter, identifier, customer, p.value.Sub(p.reported).String(), p.bucket)
		if err != nil && !errors.Is(err, payments.ErrMeterEventExists) {
			return sent, fmt.Errorf("report %s: %w", identifier, err)
		}
		err = r.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `
				INSERT INTO stripe_usage_reports (tenant_id, meter_key, bucket_start, reported, updated_at)
				VALUES ($1, $2, $3, $4::numeric, $5)
				ON CONFLICT (tenant_id, meter_key, bucket_start) DO UPDATE SET reported = excluded.reported, updated_at = excluded.updated_at`,
				tenantID, p.meter, p.bucket, p.value.String(), now)
			return err
		})
		if err != nil {
			return sent, fmt.Errorf("report %s: record: %w", identifier, err)
		}
		sent++
	}
	return sent, nil
}
