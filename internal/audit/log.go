// Package audit keeps the audit log: who changed what in a tenant, when, from where, and
// with what outcome. Entries are written by Recorder, a middleware, in the transaction of
// the change they record, and read by a tenant's admins (GET /v1/audit-log).
package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
)

// Outcomes of an audited request.
const (
	Success = "success"
	Failure = "failure"
)

// Entry is one audited request. It never holds a request or answer body, so no secret or
// password can reach it.
type Entry struct {
	ID           uuid.UUID `json:"id"`
	OccurredAt   time.Time `json:"occurred_at"`
	ActorType    string    `json:"actor_type"` // user, api_key, operator
	ActorID      string    `json:"actor_id"`
	Action       string    `json:"action"` // method and route: "PATCH /v1/projects/{id}"
	ResourceType string    `json:"resource_type"`
	ResourceID   *string   `json:"resource_id"`
	Outcome      string    `json:"outcome"`
	Status       int       `json:"status"`
	ClientIP     string    `json:"client_ip"`
	RequestID    string    `json:"request_id"`
}

// Log writes and reads entries.
type Log struct {
	DB    *postgres.DB
	Clock clock.Clock
}

const columns = "id, occurred_at, actor_type, actor_id, action, resource_type, resource_id, outcome, status, coalesce(client_ip, ''), coalesce(request_id, '')"

// insert writes e in tx, which must be tenantID's.
func (l *Log) insert(ctx context.Context, tx pgx.Tx, tenantID uuid.UUID, e *Entry) error {
	e.ID = uuid.Must(uuid.NewV7())
	e.OccurredAt = l.Clock.Now().UTC()
	_, err := tx.Exec(ctx, `
		INSERT INTO audit_log (tenant_id, id, occurred_at, actor_type, actor_id, action, resource_type,
		                       resource_id, outcome, status, client_ip, request_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, nullif($11, ''), nullif($12, ''))`,
		tenantID, e.ID, e.OccurredAt, e.ActorType, e.ActorID, e.Action, e.ResourceType,
		e.ResourceID, e.Outcome, e.Status, e.ClientIP, e.RequestID)
	if err != nil {
		return fmt.Errorf("audit.insert tenant %s: %w", tenantID, err)
	}
	return nil
}

// Record writes e in a transaction of its own: for an outcome whose change was rolled back.
func (l *Log) Record(ctx context.Context, tenantID uuid.UUID, e *Entry) error {
	return l.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error { return l.insert(ctx, tx, tenantID, e) })
}

// Query selects entries; zero fields select everything.
type Query struct {
	Actor        string
	Action       string
	ResourceType string
	ResourceID   string
	From, To     time.Time // occurred_at in [From, To)
}

// List answers a tenant's entries, newest first.
func (l *Log) List(ctx context.Context, tenantID uuid.UUID, q Query, page httpx.Page) ([]Entry, error) {
	var from, to *time.Time
	if !q.From.IsZero() {
		from = &q.From
	}
	if !q.To.IsZero() {
		to = &q.To
	}
	out, err := postgres.ReadRows(ctx, l.DB, tenantID, scanEntry, `
		SELECT `+columns+` FROM audit_log
		 WHERE id < $1 AND ($2 = '' OR actor_id = $2) AND ($3 = '' OR action = $3)
		   AND ($4 = '' OR resource_type = $4) AND ($5 = '' OR resource_id = $5)
		   AND ($6::timestamptz IS NULL OR occurred_at >= $6) AND ($7::timestamptz IS NULL OR occurred_at < $7)
		 ORDER BY id DESC LIMIT $8`,
		page.Before(), q.Actor, q.Action, q.ResourceType, q.ResourceID, from, to, page.Limit+1)
	if err != nil {
		return nil, fmt.Errorf("audit.list tenant %s: %w", tenantID, err)
	}
	return out, nil
}

func scanEntry(row pgx.Row) (Entry, error) {
	var e Entry
	err := row.Scan(&e.ID, &e.OccurredAt, &e.ActorType, &e.ActorID, &e.Action, &e.ResourceType,
		&e.ResourceID, &e.Outcome, &e.Status, &e.ClientIP, &e.RequestID)
	e.OccurredAt = e.OccurredAt.UTC()
	return e, err
}
