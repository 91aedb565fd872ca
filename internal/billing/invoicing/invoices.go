// Package invoicing bills tenants: it places billing periods, prices the current one
// (upcoming), finalizes ended ones into invoices (the closer), collects them through
// payments, and reports usage to Stripe as meter events.
package invoicing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/saasbase/saasbase/internal/billing/metering"
	"github.com/saasbase/saasbase/internal/billing/plans"
	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

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
	pricing.Period
	Currency  string        `json:"currency"`
	Plan      string        `json:"plan"`
	Lines     []InvoiceLine `json:"lines"`
	Subtotal  int64         `json:"subtotal"`
	Total     int64         `json:"total"`
	Status    string        `json:"status,omitempty"`
	PaymentID *uuid.UUID    `json:"payment_id,omitempty"`
	CreatedAt *time.Time    `json:"created_at,omitempty"`
}

// Invoices prices periods, finalizes ended ones and keeps their invoices.
type Invoices struct {
	DB      *postgres.DB
	Outbox  *events.Outbox
	Clock   clock.Clock
	Plans   *plans.Plans
	Usage   *metering.Usage
	Periods *Periods
	Grace   time.Duration // how long after its end a period still takes late usage
	Workers int           // tenants the closer works on side by side (4)
	Metrics *Metrics
	Logger  *slog.Logger
}

// Upcoming previews the current period's invoice.
func (s *Invoices) Upcoming(ctx context.Context, tenantID uuid.UUID) (Invoice, error) {
	ti, p, err := s.Periods.now(ctx, tenantID)
	if err != nil {
		return Invoice{}, err
	}
	return s.price(ctx, ti, p)
}

// price computes a period's invoice from its usage on the tenant's plan.
func (s *Invoices) price(ctx context.Context, ti TenantInfo, p pricing.Period) (Invoice, error) {
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
	return invoiceOf(plan, p, usage)
}

// invoiceOf prices a period on a plan from the usage of its meters.
func invoiceOf(plan plans.Plan, p pricing.Period, usage map[string]pricing.Usage) (Invoice, error) {
	lines, subtotal, err := pricing.Invoice(plan.Currency, decimal.RequireFromString(plan.BaseFee), plan.Charges, usage)
	if err != nil {
		return Invoice{}, err
	}
	inv := Invoice{Period: p, Currency: plan.Currency, Plan: plan.Code, Lines: make([]InvoiceLine, len(lines)), Subtotal: subtotal, Total: subtotal}
	for i, l := range lines {
		inv.Lines[i] = InvoiceLine{Description: l.Description, Quantity: json.Number(l.Quantity.String()), Amount: l.Amount}
		if l.Meter != "" { // the base fee's line has none
			inv.Lines[i].Meter = &l.Meter
		}
	}
	return inv, nil
}

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
	inv, err := postgres.ReadRow(ctx, s.DB, tenantID, scanInvoice, "SELECT "+invoiceColumns+" FROM invoices WHERE id = $1", id)
	if err != nil {
		return Invoice{}, fmt.Errorf("invoices.get %s: %w", id, err)
	}
	return inv, nil
}

// List answers the tenant's invoices, newest first.
func (s *Invoices) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]Invoice, error) {
	invs, err := postgres.ReadRows(ctx, s.DB, tenantID, scanInvoice,
		"SELECT "+invoiceColumns+" FROM invoices WHERE id < $1 ORDER BY id DESC LIMIT $2", page.Before(), page.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("invoices.list tenant %s: %w", tenantID, err)
	}
	return invs, nil
}

// openInvoice names an invoice waiting to be collected.
type openInvoice struct{ Tenant, Invoice uuid.UUID }

// open lists up to limit open invoices of every tenant, through the narrow cross-tenant
// function app.open_invoices (the collector runs for all tenants at once).
func (s *Invoices) open(ctx context.Context, limit int) ([]openInvoice, error) {
	rows, _ := s.DB.Pool.Query(ctx, "SELECT tenant_id, invoice_id FROM app.open_invoices($1)", limit)
	open, err := pgx.CollectRows(rows, pgx.RowToStructByPos[openInvoice])
	if err != nil {
		return nil, fmt.Errorf("invoices.open: %w", err)
	}
	return open, nil
}

// setPayment records the payment that collects an invoice, unless one is recorded already.
func (s *Invoices) setPayment(ctx context.Context, tenantID, invoiceID, paymentID uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE invoices SET payment_id = $2 WHERE id = $1 AND payment_id IS NULL", invoiceID, paymentID)
		return err
	})
	if err != nil {
		return fmt.Errorf("invoices.set_payment %s: %w", invoiceID, err)
	}
	return nil
}

// settle records an invoice's outcome and its event, once.
func (s *Invoices) settle(ctx context.Context, tenantID, invoiceID, paymentID uuid.UUID, status string) error {
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		inv, err := scanInvoice(tx.QueryRow(ctx, `
			UPDATE invoices SET status = $2, payment_id = $3, updated_at = $4
			 WHERE id = $1 AND status = 'open' RETURNING `+invoiceColumns, invoiceID, status, nullable(paymentID), s.Clock.Now()))
		if errs.Is(err, errs.NotFound) {
			return nil // settled meanwhile
		}
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, "invoice."+status, inv)
	})
	if err != nil {
		return fmt.Errorf("invoices.settle %s: %w", invoiceID, err)
	}
	return nil
}

func nullable(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
