package invoicing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/saasbase/saasbase/internal/billing/pricing"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Close finalizes the stored periods that ended more than Grace ago and have no invoice yet,
// oldest first, and stores the periods that have begun. One indexed query finds the tenants
// with such work (app.billing_due_tenants); Workers of them are closed side by side. A period
// it cannot finalize keeps its error and is tried again on the next run; the failure is
// logged, counted and listed for the operator (GET /v1/admin/billing/failing-periods).
// Several replicas may run it: a period is finalized under its row's lock, taken with SKIP
// LOCKED, and its invoice is unique, so each period is finalized once.
func (s *Invoices) Close(ctx context.Context) (int, error) {
	now := s.Clock.Now()
	var after *uuid.UUID
	done, failed := 0, 0
	defer func() { s.Metrics.failing.Set(float64(failed)) }()
	for {
		rows, _ := s.DB.Pool.Query(ctx, "SELECT tenant_id FROM app.billing_due_tenants($1, $2, $3, 1000)", now, now.Add(-s.Grace), after)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return done, err
		}
		n, f := s.closeTenants(ctx, ids)
		done, failed = done+n, failed+f
		if err := ctx.Err(); err != nil {
			return done, err
		}
		after = &ids[len(ids)-1]
	}
}

// closeTenants closes the tenants' periods, Workers tenants at a time.
func (s *Invoices) closeTenants(ctx context.Context, ids []uuid.UUID) (done, failed int) {
	work := make(chan uuid.UUID)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	workers := s.Workers
	if workers <= 0 {
		workers = 4
	}
	for range min(workers, len(ids)) {
		wg.Go(func() {
			for id := range work {
				n, f, err := s.closeTenant(ctx, id)
				mu.Lock()
				done, failed = done+n, failed+f
				mu.Unlock()
				if err != nil {
					s.Logger.ErrorContext(ctx, "invoicing: closing periods", slog.String("tenant_id", id.String()), slog.String("error", err.Error()))
				}
			}
		})
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	return done, failed
}

// closeTenant stores the tenant's periods up to now and finalizes those due, answering how
// many it finalized and how many failed.
func (s *Invoices) closeTenant(ctx context.Context, tenantID uuid.UUID) (done, failed int, err error) {
	now := s.Clock.Now()
	ti, err := s.Periods.tenant(ctx, tenantID)
	if err != nil {
		return 0, 0, err
	}
	closable := now.Add(-s.Grace)
	_, due, err := s.Periods.ensureDue(ctx, ti, now, &closable)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range due {
		closed, err := s.closePeriod(ctx, ti, p, now)
		if err != nil {
			failed++
			s.Metrics.closeFailures.Inc()
			s.Logger.ErrorContext(ctx, "invoicing: a period could not be finalized; it is retried on the next run",
				slog.String("tenant_id", tenantID.String()), slog.Time("period_start", p.Start), slog.String("error", err.Error()))
			if err := s.recordFailure(ctx, tenantID, p, err, now); err != nil {
				return done, failed, err
			}
			continue
		}
		if closed {
			done++
		}
	}
	return done, failed, nil
}

// closePeriod prices a period and stores its invoice and invoice.finalized, once; closed
// is false if another closer holds or has finalized the period.
func (s *Invoices) closePeriod(ctx context.Context, ti TenantInfo, p pricing.Period, now time.Time) (closed bool, err error) {
	id := uuid.Must(uuid.NewV7())
	err = s.DB.InTenantTx(ctx, ti.ID, func(tx pgx.Tx) error {
		// The period's row is the claim: another closer finalizing it holds it, and this
		// one passes it by rather than pricing it again. Ingestion takes the close lock
		// shared before it checks for finalized periods: usage is either in the invoice
		// priced here, or refused as too late, never accepted and lost. (Both go in one
		// round trip; a closer passing a period by waits for the other's lock, briefly.)
		var (
			closedAt *time.Time
			claimed  bool
		)
		b := &pgx.Batch{}
		b.Queue("SELECT closed_at FROM billing_periods WHERE period_start = $1 FOR UPDATE SKIP LOCKED", p.Start).
			QueryRow(func(row pgx.Row) error {
				err := row.Scan(&closedAt)
				if postgres.IsNoRows(err) {
					return nil
				}
				claimed = err == nil && closedAt == nil
				return err
			})
		b.Queue("SELECT pg_advisory_xact_lock("+closeLock+")", ti.ID)
		if err := tx.SendBatch(ctx, b).Close(); err != nil || !claimed {
			return err
		}
		inv, err := s.price(postgres.WithTx(ctx, ti.ID, tx), ti, p)
		if err != nil {
			return err
		}
		lines, _ := json.Marshal(inv.Lines)
		var inserted bool
		b = &pgx.Batch{}
		b.Queue(`
			INSERT INTO invoices (tenant_id, id, period_start, period_end, currency, plan_code, lines, subtotal, total, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $10)
			ON CONFLICT (tenant_id, period_start) DO NOTHING`,
			ti.ID, id, p.Start, p.End, inv.Currency, inv.Plan, lines, inv.Subtotal, inv.Total, now).
			Exec(func(tag pgconn.CommandTag) error {
				inserted = tag.RowsAffected() > 0
				return nil
			})
		b.Queue("UPDATE billing_periods SET close_error = NULL, close_failed_at = NULL, closed_at = $2 WHERE period_start = $1", p.Start, now)
		if err := tx.SendBatch(ctx, b).Close(); err != nil || !inserted {
			return err // or invoiced already, before periods recorded it
		}
		closed = true
		inv.ID, inv.Status, inv.CreatedAt = &id, "open", &now
		return s.Outbox.Append(ctx, tx, ti.ID, "invoice.finalized", inv)
	})
	if err != nil {
		return false, fmt.Errorf("invoices.close tenant %s period %s: %w", ti.ID, p.Start.Format(time.RFC3339), err)
	}
	return closed, nil
}

// maxCloseError bounds the error kept with a period.
const maxCloseError = 1000

// recordFailure keeps a period's failure to finalize with it, for the operator.
func (s *Invoices) recordFailure(ctx context.Context, tenantID uuid.UUID, p pricing.Period, cause error, now time.Time) error {
	msg := cause.Error()
	if len(msg) > maxCloseError {
		msg = strings.ToValidUTF8(msg[:maxCloseError], "")
	}
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			UPDATE billing_periods SET close_attempts = close_attempts + 1, close_error = $2, close_failed_at = $3
			 WHERE period_start = $1`, p.Start, msg, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("invoices.close tenant %s period %s: recording the failure: %w", tenantID, p.Start.Format(time.RFC3339), err)
	}
	return nil
}

// FailingPeriod is a period the closer has failed to finalize: the operator's view.
type FailingPeriod struct {
	TenantID uuid.UUID `json:"tenant_id"`
	pricing.Period
	Attempts      int       `json:"attempts"`
	LastError     string    `json:"last_error"`
	LastAttemptAt time.Time `json:"last_attempt_at"`
}

// Failing lists the periods, of every tenant, that the closer has failed to finalize, the
// most recent failure first.
func (s *Invoices) Failing(ctx context.Context, limit int) ([]FailingPeriod, error) {
	rows, _ := s.DB.Pool.Query(ctx, "SELECT * FROM app.failing_billing_periods($1)", limit)
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FailingPeriod, error) {
		var p FailingPeriod
		err := r.Scan(&p.TenantID, &p.Start, &p.End, &p.Attempts, &p.LastError, &p.LastAttemptAt)
		p.Start, p.End, p.LastAttemptAt = p.Start.UTC(), p.End.UTC(), p.LastAttemptAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("invoices.failing: %w", err)
	}
	return ps, nil
}
