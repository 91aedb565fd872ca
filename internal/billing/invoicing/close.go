package invoicing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Close finalizes the periods that ended more than Grace ago and have no invoice yet, for
// every tenant, and collects them. Several replicas may run it: an invoice per (tenant,
// period) is unique, so each period is finalized once.
func (s *Invoices) Close(ctx context.Context) (int, error) {
	var after *uuid.UUID
	done := 0
	for {
		rows, _ := s.DB.Pool.Query(ctx, "SELECT tenant_id FROM app.billing_tenants($1, 200)", after)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return done, err
		}
		for _, id := range ids {
			n, err := s.closeTenant(ctx, id)
			if err != nil {
				s.Logger.ErrorContext(ctx, "invoicing: closing periods", slog.String("tenant_id", id.String()), slog.String("error", err.Error()))
				continue
			}
			done += n
		}
		after = &ids[len(ids)-1]
	}
}

// closeTenant finalizes a tenant's last ended period if its grace is over.
func (s *Invoices) closeTenant(ctx context.Context, tenantID uuid.UUID) (int, error) {
	now := s.Clock.Now()
	ti, loc, cur, err := s.Periods.at(ctx, tenantID, now)
	if err != nil {
		return 0, err
	}
	prev := pricing.PeriodAt(ti.CreatedAt, loc, cur.Start.Add(-time.Microsecond))
	if now.Before(prev.End.Add(s.Grace)) || !prev.End.After(ti.CreatedAt) {
		return 0, nil
	}
	id := uuid.Must(uuid.NewV7())
	created := false
	var inv Invoice
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		// Ingestion takes this lock shared before it checks for finalized periods: usage is
		// either in the invoice priced here, or refused as too late, never accepted and lost.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+closeLock+")", tenantID); err != nil {
			return err
		}
		var err error
		if inv, err = s.price(postgres.WithTx(ctx, tenantID, tx), ti, prev); err != nil {
			return err
		}
		lines, _ := json.Marshal(inv.Lines)
		// A period overlapping one already invoiced (the tenant changed its time zone) is not
		// invoiced again.
		tag, err := tx.Exec(ctx, `
			INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $10
			 WHERE NOT EXISTS (SELECT FROM invoices WHERE period_start < $4 AND period_end > $3)
			ON CONFLICT (tenant_id, period_start) DO NOTHING`,
			tenantID, id, prev.Start, prev.End, inv.Currency, inv.Plan, lines, inv.Subtotal, inv.Total, now)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		created = true
		inv.ID, inv.Status, inv.CreatedAt = &id, "open", &now
		return s.Outbox.Append(ctx, tx, tenantID, "invoice.finalized", inv)
	})
	if err != nil {
		return 0, fmt.Errorf("invoices.close tenant %s period %s: %w", tenantID, prev.Start.Format(time.RFC3339), err)
	}
	if !created {
		return 0, nil
	}
	return 1, nil
}
