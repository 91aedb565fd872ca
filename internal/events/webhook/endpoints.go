package webhook

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/saasbase/saasbase/internal/events"
	"github.com/saasbase/saasbase/internal/platform/clock"
	"github.com/saasbase/saasbase/internal/platform/errs"
	"github.com/saasbase/saasbase/internal/platform/httpx"
	"github.com/saasbase/saasbase/internal/platform/postgres"
	"github.com/saasbase/saasbase/internal/platform/secretbox"
)

// DefaultMaxEndpoints bounds a tenant's endpoints unless Endpoints.Max says otherwise: each
// one multiplies the deliveries of every event.
const DefaultMaxEndpoints = 20

// EndpointInput is the body of POST /v1/webhook-endpoints.
type EndpointInput struct {
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
}

// eventTypePattern accepts an event type ("project.created"), every type of a family
// ("project.*"), or every type ("*").
var eventTypePattern = regexp.MustCompile(`^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$`)

// Validate checks the shape of the fields; whether the URL may be reached depends on the
// deployment and is Endpoints' to check.
func (in *EndpointInput) Validate() error {
	var f errs.Fields
	if in.URL == "" || len(in.URL) > 2048 {
		f.Add("url", "is required, at most 2048 characters")
	}
	if len(in.EventTypes) == 0 || len(in.EventTypes) > 50 {
		f.Add("event_types", "must list 1 to 50 event types")
	}
	for _, t := range in.EventTypes {
		if len(t) > 200 || !eventTypePattern.MatchString(t) {
			f.Add("event_types", `each must be an event type such as "project.created", a family such as "project.*", or "*"`)
			break
		}
	}
	slices.Sort(in.EventTypes)
	in.EventTypes = slices.Compact(in.EventTypes)
	return f.Err()
}

// Endpoints manages a tenant's webhook endpoints and shows their deliveries.
type Endpoints struct {
	DB           *postgres.DB
	Outbox       *events.Outbox
	Clock        clock.Clock
	Secrets      *secretbox.Box
	RequireHTTPS bool // production: endpoints must be https
	AllowPrivate bool // WEBHOOKS_ALLOW_PRIVATE_NETWORKS
	Max          int  // WEBHOOK_MAX_ENDPOINTS: a tenant's endpoints at most (DefaultMaxEndpoints if < 1)
}

func (s *Endpoints) max() int {
	if s.Max < 1 {
		return DefaultMaxEndpoints
	}
	return s.Max
}

// Event types the endpoints' own changes emit.
const (
	EventEndpointCreated  = "webhook_endpoint.created"
	EventEndpointDeleted  = "webhook_endpoint.deleted"
	EventEndpointEnabled  = "webhook_endpoint.enabled"
	EventEndpointDisabled = "webhook_endpoint.disabled"
	// EventEndpointSecretRotated carries the endpoint, never a secret: the event log and
	// other webhook endpoints see it.
	EventEndpointSecretRotated = "webhook_endpoint.secret_rotated"
)

// PreviousSecretFor is how long after a rotation deliveries are still signed with the
// previous secret too, so that a receiver can switch over without failing a message.
const PreviousSecretFor = 24 * time.Hour

// checkURL refuses what can be refused before any delivery: other schemes, credentials in
// the URL (they would be stored in the clear), and, unless allowed, addresses that are
// literally private. Names are checked when a delivery dials, on the address they resolve to.
func (s *Endpoints) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errs.Field("url", "must be an absolute https URL")
	}
	switch {
	case u.Scheme != "https" && (s.RequireHTTPS || u.Scheme != "http"):
		if s.RequireHTTPS {
			return errs.Field("url", "must be an https URL")
		}
		return errs.Field("url", "must be an http or https URL")
	case u.User != nil:
		return errs.Field("url", "must not carry credentials: receivers authenticate deliveries by their signature")
	case u.Fragment != "":
		return errs.Field("url", "must not have a fragment")
	}
	if s.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); (err == nil && !publicAddr(ip)) || localName(host) {
		return errs.Field("url", "must point at a public address, not a private, loopback, link-local or reserved one")
	}
	return nil
}

// aad binds a sealed secret to its row.
func aad(tenantID, id uuid.UUID) []byte { return append(tenantID[:], id[:]...) }

const endpointColumns = "id, url, event_types, status, disabled_reason, failing_since, created_at, updated_at"

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.URL, &e.EventTypes, &e.Status, &e.DisabledReason, &e.FailingSince, &e.CreatedAt, &e.UpdatedAt)
	if postgres.IsNoRows(err) {
		return Endpoint{}, errs.NotFoundf("no such webhook endpoint")
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if e.FailingSince != nil {
		t := e.FailingSince.UTC()
		e.FailingSince = &t
	}
	return e, err
}

// newSecret makes a signing key and seals it for the endpoint's row.
func (s *Endpoints) newSecret(tenantID, id uuid.UUID) (key, sealed []byte, err error) {
	key = make([]byte, 32)
	rand.Read(key)
	sealed, err = s.Secrets.Seal(key, aad(tenantID, id))
	return key, sealed, err
}

// Create registers an endpoint. The answer carries its secret, this once.
func (s *Endpoints) Create(ctx context.Context, tenantID uuid.UUID, in EndpointInput) (Endpoint, error) {
	if err := s.checkURL(in.URL); err != nil {
		return Endpoint{}, err
	}
	id := uuid.Must(uuid.NewV7())
	key, sealed, err := s.newSecret(tenantID, id)
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook_endpoints.create tenant %s: %w", tenantID, err)
	}
	// Concurrent creations take turns on a lock of the tenant's endpoints, and each counts
	// after the previous one committed, so the limit holds.
	var n int
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "saasbase:webhook-endpoints:"+tenantID.String())
	b.Queue("SELECT count(*) FROM webhook_endpoints").QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
	var e Endpoint
	err = s.DB.InTenantTxBatch(ctx, tenantID, b, func(tx pgx.Tx) (err error) {
		if limit := s.max(); n >= limit {
			return errs.E(errs.Conflict, "conflict", "a tenant has at most %d webhook endpoints", limit)
		}
		e, err = scanEndpoint(tx.QueryRow(ctx, `
			INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, secret_sealed, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'enabled', $6, $6) RETURNING `+endpointColumns,
			tenantID, id, in.URL, in.EventTypes, sealed, s.Clock.Now()))
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, EventEndpointCreated, e)
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook_endpoints.create tenant %s: %w", tenantID, err)
	}
	e.Secret = encodeSecret(key)
	return e, nil
}

// List answers the tenant's endpoints in creation order.
func (s *Endpoints) List(ctx context.Context, tenantID uuid.UUID, page httpx.Page) ([]Endpoint, error) {
	var out []Endpoint
	b := &pgx.Batch{}
	b.Queue("SELECT "+endpointColumns+" FROM webhook_endpoints WHERE id > $1 ORDER BY id LIMIT $2", page.Cursor, page.Limit+1).
		Query(func(rows pgx.Rows) (err error) {
			out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
			return err
		})
	if err := s.DB.InTenantRead(ctx, tenantID, b); err != nil {
		return nil, fmt.Errorf("webhook_endpoints.list tenant %s: %w", tenantID, err)
	}
	return out, nil
}

// Get answers one endpoint.
func (s *Endpoints) Get(ctx context.Context, tenantID, id uuid.UUID) (Endpoint, error) {
	var e Endpoint
	b := &pgx.Batch{}
	b.Queue("SELECT "+endpointColumns+" FROM webhook_endpoints WHERE id = $1", id).
		QueryRow(func(row pgx.Row) (err error) {
			e, err = scanEndpoint(row)
			return err
		})
	if err := s.DB.InTenantRead(ctx, tenantID, b); err != nil {
		return Endpoint{}, fmt.Errorf("webhook_endpoints.get %s: %w", id, err)
	}
	return e, nil
}

// Delete removes an endpoint with its deliveries.
func (s *Endpoints) Delete(ctx context.Context, tenantID, id uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) error {
		e, err := scanEndpoint(tx.QueryRow(ctx, "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING "+endpointColumns, id))
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, EventEndpointDeleted, e)
	})
	if err != nil {
		return fmt.Errorf("webhook_endpoints.delete %s: %w", id, err)
	}
	return nil
}

// Enable turns an endpoint back on after an automatic disable; its pending deliveries go
// out at once. Enabling an enabled endpoint changes nothing.
func (s *Endpoints) Enable(ctx context.Context, tenantID, id uuid.UUID) (Endpoint, error) {
	var e Endpoint
	err := s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) (err error) {
		now := s.Clock.Now()
		e, err = scanEndpoint(tx.QueryRow(ctx, `
			UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, failing_since = NULL, updated_at = $2
			 WHERE id = $1 AND status = 'disabled' RETURNING `+endpointColumns, id, now))
		if errs.Is(err, errs.NotFound) {
			e, err = scanEndpoint(tx.QueryRow(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints WHERE id = $1", id))
			return err
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE webhook_deliveries SET next_attempt_at = $2, updated_at = $2
			 WHERE endpoint_id = $1 AND status = 'pending'`, id, now); err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, EventEndpointEnabled, e)
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook_endpoints.enable %s: %w", id, err)
	}
	return e, nil
}

// RotateSecret gives an endpoint a new signing secret; the answer carries it, this once. The
// secret it replaces keeps signing deliveries, beside the new one, for PreviousSecretFor, and
// then stops. Rotating again within that time retires the older one at once: only the
// secret just replaced is kept, as a receiver can only have been using that one or the new.
func (s *Endpoints) RotateSecret(ctx context.Context, tenantID, id uuid.UUID) (Endpoint, error) {
	key, sealed, err := s.newSecret(tenantID, id)
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook_endpoints.rotate_secret %s: %w", id, err)
	}
	var e Endpoint
	err = s.DB.InTenantTx(ctx, tenantID, func(tx pgx.Tx) (err error) {
		now := s.Clock.Now()
		// The previous secret stays sealed as it was: the seal is bound to the row, not to
		// the column, and both secrets are this endpoint's.
		e, err = scanEndpoint(tx.QueryRow(ctx, `
			UPDATE webhook_endpoints
			   SET previous_secret_sealed = secret_sealed, previous_secret_expires_at = $3,
			       secret_sealed = $2, updated_at = $4
			 WHERE id = $1 RETURNING `+endpointColumns, id, sealed, now.Add(PreviousSecretFor), now))
		if err != nil {
			return err
		}
		return s.Outbox.Append(ctx, tx, tenantID, EventEndpointSecretRotated, e)
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook_endpoints.rotate_secret %s: %w", id, err)
	}
	e.Secret = encodeSecret(key)
	return e, nil
}
