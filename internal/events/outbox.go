// Package events is the event-driven core. Every state change writes its event into the
// transactional outbox (Outbox.Append); the Relay publishes the outbox in commit order to a
// Transport (InProcess by default, Kafka when brokers are configured); Consumers apply each
// event once, in its tenant's transaction, retrying failures and dead-lettering poison
// events. The tenant's event log (GET /v1/events) is read from the outbox too.
// See docs/events.md.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// Event is the one envelope used everywhere: the event log, webhook bodies, Kafka values.
type Event struct {
	ID         uuid.UUID       `json:"id"`
	Type       string          `json:"type"`
	TenantID   *uuid.UUID      `json:"tenant_id"` // nil for platform events
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
	// TraceParent is the W3C traceparent of the transaction that wrote the event, "" while
	// tracing is off. Not part of the envelope: it travels beside it (Kafka headers).
	TraceParent string `json:"-"`
}

// Tenant is the tenant whose transaction the event belongs in: postgres.PlatformTenant for
// platform events.
func (e Event) Tenant() uuid.UUID {
	if e.TenantID == nil {
		return postgres.PlatformTenant
	}
	return *e.TenantID
}

// Outbox appends events inside the transaction that makes the change they describe, so an
// event exists exactly when its change does.
type Outbox struct {
	Clock clock.Clock
}

// Append writes an event of tenantID (postgres.PlatformTenant for platform events) in tx.
// The row goes out with tx's COMMIT (postgres.Later), in its round trip, when tx is the
// transaction InTenantTx began: the transaction does not see its own event, and a failure to
// write it fails the commit.
func (o *Outbox) Append(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, typ string, data any) error {
	args, err := o.row(ctx, tenantID, typ, data)
	if err == nil {
		err = postgres.Later(ctx, tx, appendSQL, args...)
	}
	if err != nil {
		return fmt.Errorf("outbox.append %s tenant %s: %w", typ, tenantID, err)
	}
	return nil
}

// Queue is Append for a batch: it queues the event's insert into b, which must be sent in
// the transaction that makes the change (b's other statements, typically), so that the
// event still exists exactly when its change does.
func (o *Outbox) Queue(ctx context.Context, b *pgx.Batch, tenantID uuid.UUID, typ string, data any) error {
	args, err := o.row(ctx, tenantID, typ, data)
	if err != nil {
		return fmt.Errorf("outbox.append %s tenant %s: %w", typ, tenantID, err)
	}
	b.Queue(appendSQL, args...)
	return nil
}

const appendSQL = "INSERT INTO outbox (tenant_id, id, type, occurred_at, data, traceparent) VALUES ($1, $2, $3, $4, $5, nullif($6, ''))"

// row answers the arguments of appendSQL.
func (o *Outbox) row(ctx context.Context, tenantID uuid.UUID, typ string, data any) ([]any, error) {
	body, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	// The transaction's trace, if traced, so that the event's consumers and webhook deliveries
	// continue it.
	return []any{tenantID, uuid.Must(uuid.NewV7()), typ, o.Clock.Now(), body, tracing.TraceParent(ctx)}, nil
}

// Log reads a tenant's own events.
type Log struct {
	DB *postgres.DB
}

// Query selects events of a tenant's log.
type Query struct {
	Type string   // only events of this type; "" for every type
	Only []string // only events whose type starts with one of these; nil for every type
}

// List answers a tenant's events, newest first, as q selects them.
func (l *Log) List(ctx context.Context, tenantID uuid.UUID, q Query, page httpx.Page) ([]Event, error) {
	cursor := page.Before()
	var out []Event
	err := l.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `
			SELECT id, type, tenant_id, occurred_at, data
			  FROM outbox
			 WHERE id < $1 AND ($2 = '' OR type = $2) AND ($4::text[] IS NULL OR type ^@ ANY ($4))
			 ORDER BY id DESC LIMIT $3`, cursor, q.Type, page.Limit+1, q.Only)
		var err error
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
			var e Event
			err := r.Scan(&e.ID, &e.Type, &e.TenantID, &e.OccurredAt, &e.Data)
			e.OccurredAt = e.OccurredAt.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events.list tenant %s: %w", tenantID, err)
	}
	return out, nil
}
