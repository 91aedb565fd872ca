package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
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

// InvoiceLine is one line of an invoice.
type InvoiceLine struct {
	Description string      `json:"description"`
	Meter       *string     `json:"meter"`
	Quantity    json.Number `json:"quantity"`
	Amount      int64       `json:"amount"`
}

// Invoice is a period's bill: a preview (upcoming) or finalized.
type Invoice struct {
	ID *uuid.UUID `json:"id,omitempty"`
	Period
	Currency  string        `json:"currency"`
	Plan      string        `json:"plan"`
	Lines     []InvoiceLine `json:"lines"`
	Subtotal  int64         `json:"subtotal"`
	Total     int64         `json:"total"`
	Status    string        `json:"status,omitempty"`
	PaymentID *uuid.UUID    `json:"payment_id,omitempty"`
	CreatedAt *time.Time    `json:"created_at,omitempty"`
}

// Entitlement is a quota's standing in the current period.
type Entitlement struct {
	Meter       string      `json:"meter"`
	Limit       int64       `json:"limit"`
	Usage       json.Number `json:"usage"`
	Remaining   json.Number `json:"remaining"`
	HasAccess   bool        `json:"has_access"`
	Enforcement string      `json:"enforcement"`
	Period
}

// Invoices prices periods, answers entitlements and finalizes ended periods.
type Invoices struct {
	DB       *postgres.DB
	Outbox   *events.Outbox
	Clock    clock.Clock
	Plans    *Plans
	Usage    *Usage
	Tenants  Tenants
	Payments *Payments
	Grace    time.Duration // how long after its end a period still takes late usage
	Logger   *slog.Logger
}

func (s *Invoices) period(ctx context.Context, tenantID uuid.UUID, at time.Time) (TenantInfo, *time.Location, Period, error) {
	ti, err := s.Tenants.BillingInfo(ctx, tenantID)
	if err != nil {
		return ti, nil, Period{}, err
	}
	loc, err := time.LoadLocation(ti.Timezone)
	if err != nil {
		return ti, nil, Period{}, fmt.Errorf("billing: tenant %s time zone %q: %w", tenantID, ti.Timezone, err)
	}
	return ti, loc, PeriodAt(ti.CreatedAt, loc, at), nil
}

// Upcoming previews the current period's invoice.
func (s *Invoices) Upcoming(ctx context.Context, tenantID uuid.UUID) (Invoice, error) {
	ti, _, p, err := s.period(ctx, tenantID, s.Clock.Now())
	if err != nil {
		return Invoice{}, err
	}
	return s.price(ctx, ti, p)
}

// price computes a period's invoice from its usage on the tenant's plan.
func (s *Invoices) price(ctx context.Context, ti TenantInfo, p Period) (Invoice, error) {
	plan, err := s.Plans.Get(ctx, ti.Plan)
	if err != nil {
		return Invoice{}, err
	}
	usage := map[string]pricing.Usage{}
	for _, c := range plan.Charges {
		if _, ok := usage[c.Meter]; ok {
			continue
		}
		u, err := s.Usage.Total(ctx, ti.ID, c.Meter, p)
		if err != nil {
			return Invoice{}, err
		}
		usage[c.Meter] = u
	}
	lines, subtotal, err := pricing.Invoice(plan.Currency, decimal.RequireFromString(plan.BaseFee), plan.Charges, usage)
	if err != nil {
		return Invoice{}, err
	}
	inv := Invoice{Period: p, Currency: plan.Currency, Plan: plan.Code, Lines: make([]InvoiceLine, len(lines)), Subtotal: subtotal, Total: subtotal}
	for i, l := range lines {
		inv.Lines[i] = InvoiceLine{Description: l.Description, Meter: optional(l.Meter), Quantity: json.Number(l.Quantity.String()), Amount: l.Amount}
	}
	return inv, nil
}

// Entitlements answers each quota of the tenant's plan against the current period's usage.
func (s *Invoices) Entitlements(ctx context.Context, tenantID uuid.UUID) ([]Entitlement, error) {
	ti, _, p, err := s.period(ctx, tenantID, s.Clock.Now())
	if err != nil {
		return nil, err
	}
	plan, err := s.Plans.Get(ctx, ti.Plan)
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
				s.Logger.ErrorContext(ctx, "billing: closing periods", slog.String("tenant_id", id.String()), slog.String("error", err.Error()))
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
	ti, loc, cur, err := s.period(ctx, tenantID, now)
	if err != nil {
		return 0, err
	}
	prev := PeriodAt(ti.CreatedAt, loc, cur.Start.Add(-time.Microsecond))
	if now.Before(prev.End.Add(s.Grace)) || !prev.End.After(ti.CreatedAt) {
		return 0, nil
	}
	id := uuid.Must(uuid.NewV7())
	created := false
	var inv Invoice
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		// Ingestion takes this lock shared before it checks for finalized periods: usage is
		// either in the invoice priced here, or refused as too late, never accepted and lost.
		if _, err := tx.Exec(ctx, closeLock+"_xact_lock(hashtextextended('billing-close/' || $1::text, 0))", tenantID); err != nil {
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
	if err != nil || !created {
		return 0, err
	}
	return 1, nil
}

// closeLock names the advisory lock between closing a tenant's period (exclusive) and
// ingesting its usage (shared).
const closeLock = "SELECT pg_advisory"

const invoiceColumns = "id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, payment_id, created_at"

func scanInvoice(row pgx.Row) (Invoice, error) {
	var inv Invoice
	var id uuid.UUID
	var created time.Time
	err := row.Scan(&id, &inv.Start, &inv.End, &inv.Currency, &inv.Plan, &inv.Lines, &inv.Subtotal, &inv.Total, &inv.Status, &inv.PaymentID, &created)
	if postgres.IsNoRows(err) {
		return Invoice{}, errs.NotFoundf("no such invoice")
	}
	inv.ID, inv.CreatedAt = &id, &created
	inv.Start, inv.End, created = inv.Start.UTC(), inv.End.UTC(), created.UTC()
	return inv, err
}

// Get answers one invoice.
func (s *Invoices) Get(ctx context.Context, tenantID, id uuid.UUID) (Invoice, error) {
	return postgres.ReadRow(ctx, s.DB, tenantID, scanInvoice, "SELECT "+invoiceColumns+" FROM invoices WHERE id = $1", id)
}

// List answers the tenant's invoices, newest first.
func (s *Invoices) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]Invoice, error) {
	return postgres.ReadRows(ctx, s.DB, tenantID, scanInvoice,
		"SELECT "+invoiceColumns+" FROM invoices WHERE id < $1 ORDER BY id DESC LIMIT $2", page.Before(), page.Limit+1)
}

// CheckQuotas emits the threshold events of the given meters' quotas, after usage of them
// was stored.
func (s *Invoices) CheckQuotas(ctx context.Context, tenantID uuid.UUID, meters []string) error {
	ti, _, p, err := s.period(ctx, tenantID, s.Clock.Now())
	if err != nil {
		return err
	}
	plan, err := s.Plans.Get(ctx, ti.Plan)
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
