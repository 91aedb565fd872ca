package webhook

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/tracing"
)

// Consumer is the fan-out: for each tenant event, one delivery to each of the tenant's
// enabled endpoints that want its type. Platform events never reach it.
func (s *Endpoints) Consumer() events.Consumer {
	return events.Consumer{Name: "webhooks", Handle: s.fanout}
}

// payload is a delivery's body: the event's envelope plus the top-level timestamp Standard
// Webhooks payloads carry, so that receivers' standard libraries find it. It is the moment
// the event occurred, not of an attempt (that is webhook-timestamp): every attempt sends the
// same bytes.
type payload struct {
	events.Event
	Timestamp time.Time `json:"timestamp"`
}

func (s *Endpoints) fanout(ctx context.Context, tx pgx.Tx, e events.Event) error {
	rows, _ := tx.Query(ctx, `
		SELECT id FROM webhook_endpoints
		 WHERE status = 'enabled'
		   AND EXISTS (SELECT FROM unnest(event_types) t
		                WHERE t = '*' OR t = $1 OR (t LIKE '%.*' AND starts_with($1, left(t, -1))))`, e.Type)
	endpoints, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(endpoints) == 0 {
		return err
	}
	body, err := json.Marshal(payload{e, e.OccurredAt}) // every attempt sends, and signs, these bytes
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, len(endpoints))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	now := s.Clock.Now()
	// Each delivery keeps the trace of the consumer that made it (so of the event's request),
	// which its attempts continue. Nothing in the transaction reads the deliveries back: they
	// go out with its commit (the consumers flush them sooner where a savepoint needs it).
	return postgres.Later(ctx, tx, `
		INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at, updated_at, traceparent)
		SELECT $1, d.id, d.endpoint_id, $2, $3, $4, 'pending', $5, $5, $5, nullif($8, '')
		  FROM unnest($6::uuid[], $7::uuid[]) AS d (id, endpoint_id)
		ON CONFLICT (tenant_id, endpoint_id, event_id) DO NOTHING`,
		e.Tenant(), e.ID, e.Type, body, now, ids, endpoints, tracing.TraceParent(ctx))
}
