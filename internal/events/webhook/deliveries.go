package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Deliveries answers an endpoint's deliveries, newest first, each with its attempts.
func (s *Endpoints) Deliveries(ctx context.Context, tenantID, endpointID uuid.UUID, page httpx.Page) ([]Delivery, error) {
	cursor := page.Before()
	var out []Delivery
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM webhook_endpoints WHERE id = $1)", endpointID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return errs.NotFoundf("no such webhook endpoint")
		}
		rows, _ := tx.Query(ctx, "SELECT "+deliveryColumns+" FROM webhook_deliveries WHERE endpoint_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
			endpointID, cursor, page.Limit+1)
		var err error
		if out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) }); err != nil {
			return err
		}
		return attachAttempts(ctx, tx, out)
	})
	if err != nil {
		return nil, fmt.Errorf("webhook_endpoints.deliveries %s: %w", endpointID, err)
	}
	return out, nil
}

// Retry sends a delivery again, now, with a fresh schedule: after a failure, or to resend
// one that succeeded. The endpoint must be enabled.
func (s *Endpoints) Retry(ctx context.Context, tenantID, endpointID, deliveryID uuid.UUID) (Delivery, error) {
	var d Delivery
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) (err error) {
		var status string
		err = tx.QueryRow(ctx, "SELECT status FROM webhook_endpoints WHERE id = $1", endpointID).Scan(&status)
		switch {
		case postgres.IsNoRows(err):
			return errs.NotFoundf("no such webhook endpoint")
		case err != nil:
			return err
		case status != StatusEnabled:
			return errs.E(errs.Conflict, "conflict", "the endpoint is disabled: enable it first")
		}
		d, err = scanDelivery(tx.QueryRow(ctx, `
			UPDATE webhook_deliveries SET status = 'pending', retry_from = attempts, next_attempt_at = $3, updated_at = $3
			 WHERE id = $1 AND endpoint_id = $2 RETURNING `+deliveryColumns, deliveryID, endpointID, s.Clock.Now()))
		if err != nil {
			return err
		}
		one := []Delivery{d}
		err = attachAttempts(ctx, tx, one)
		d = one[0]
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook_deliveries.retry %s: %w", deliveryID, err)
	}
	return d, nil
}

const deliveryColumns = "id, endpoint_id, event_id, event_type, status, next_attempt_at, created_at, updated_at"

func scanDelivery(row pgx.Row) (Delivery, error) {
	var (
		d    Delivery
		next time.Time
	)
	err := row.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Status, &next, &d.CreatedAt, &d.UpdatedAt)
	if postgres.IsNoRows(err) {
		return Delivery{}, errs.NotFoundf("no such delivery")
	}
	if d.Status == DeliveryPending {
		next = next.UTC()
		d.NextAttemptAt = &next
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	d.Attempts = []Attempt{}
	return d, err
}

// attachAttempts fills in the attempts of ds, which share a slice's backing array.
func attachAttempts(ctx context.Context, tx pgx.Tx, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(ds))
	at := make(map[uuid.UUID]*Delivery, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID
		at[ds[i].ID] = &ds[i]
	}
	rows, _ := tx.Query(ctx, `
		SELECT delivery_id, attempt, attempted_at, duration_ms, status_code, error FROM webhook_attempts
		 WHERE delivery_id = ANY ($1) ORDER BY delivery_id, attempt`, ids)
	type row struct {
		delivery uuid.UUID
		Attempt
	}
	attempts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (a row, err error) {
		err = r.Scan(&a.delivery, &a.Attempt.Attempt, &a.AttemptedAt, &a.DurationMS, &a.StatusCode, &a.Error)
		a.AttemptedAt = a.AttemptedAt.UTC()
		return a, err
	})
	for _, a := range attempts {
		d := at[a.delivery]
		d.Attempts = append(d.Attempts, a.Attempt)
	}
	return err
}
