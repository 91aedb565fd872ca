package metering

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/billing/pricing"
)

// Periods is what metering needs to know of billing periods; invoicing, which owns them,
// provides it.
type Periods interface {
	// Current answers the tenant's plan and the billing period it is in now.
	Current(ctx context.Context, tenantID uuid.UUID) (plan string, p pricing.Period, err error)
	// FinalizedUntil answers, inside an ingestion's transaction, where the tenant's last
	// finalized period ends (nil: none yet), and keeps the period closer off the tenant
	// until the transaction ends: usage is either in the invoice or refused as too late,
	// never accepted and lost.
	FinalizedUntil(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID) (*time.Time, error)
}
