package payments

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Customers maps tenants to their Stripe customers, created lazily the first time one is
// needed (a collection, a usage report).
type Customers struct {
	DB     *postgres.DB
	Stripe *Stripe
	Clock  clock.Clock
}

// Of answers the tenant's Stripe customer id, creating the customer if there is none yet.
// Stripe's idempotency key comes from the tenant id, so concurrent first calls make one.
func (s *Customers) Of(ctx context.Context, tenantID uuid.UUID) (string, error) {
	var id string
	b := &pgx.Batch{}
	b.Queue("SELECT stripe_customer_id FROM billing_customers WHERE tenant_id = $1", tenantID).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&id)
			if postgres.IsNoRows(err) {
				return nil
			}
			return err
		})
	if err := s.DB.InTenantRead(ctx, tenantID, b); err != nil {
		return "", fmt.Errorf("customers.of tenant %s: %w", tenantID, err)
	}
	if id != "" {
		return id, nil
	}
	id, err := s.Stripe.CreateCustomer(ctx, tenantID.String(), "tenant "+tenantID.String())
	if err != nil {
		return "", fmt.Errorf("customers.of tenant %s: create: %w", tenantID, err)
	}
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO billing_customers (tenant_id, stripe_customer_id, created_at)
			VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO NOTHING`, tenantID, id, s.Clock.Now())
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT stripe_customer_id FROM billing_customers WHERE tenant_id = $1", tenantID).Scan(&id)
	})
	if err != nil {
		return "", fmt.Errorf("customers.of tenant %s: store %s: %w", tenantID, id, err)
	}
	return id, nil
}
