-- The event-driven core: what consumers took in (inbox), what they failed to apply and retry
-- (parked events), what they gave up on (dead letters), tenants' webhook endpoints and their
-- deliveries, and the narrow cross-tenant functions the relay and the workers run through.
-- See docs/events.md.

-- +goose Up

-- One row per (consumer, event) a consumer has taken in: applied, parked for a retry, or
-- dead-lettered. It is written in the transaction of the effect, so an event delivered twice
-- takes effect once. Platform events live under the all-zero tenant, like in the outbox.
CREATE TABLE event_inbox (
    tenant_id   uuid NOT NULL,
    consumer    text NOT NULL,
    event_id    uuid NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, consumer, event_id)
);
CREATE INDEX event_inbox_received_idx ON event_inbox (received_at);

-- Events a consumer failed to apply, waiting for their next attempt, and the events of the
-- same tenant parked behind them so that a consumer still sees a tenant's events in order.
-- seq is the order of parking, which is the order of the stream.
CREATE TABLE event_retries (
    tenant_id       uuid NOT NULL,
    consumer        text NOT NULL,
    event_id        uuid NOT NULL,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    event           jsonb NOT NULL,       -- the envelope, as delivered
    attempts        int NOT NULL CHECK (attempts >= 0),  -- failed attempts; 0 when parked behind another
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    parked_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, consumer, event_id)
);
CREATE INDEX event_retries_queue_idx ON event_retries (tenant_id, consumer, seq);
CREATE INDEX event_retries_due_idx ON event_retries (next_attempt_at);

-- Events a consumer gave up on after its last attempt. Nothing reads them automatically: an
-- operator looks, fixes the consumer, and replays what matters.
CREATE TABLE event_dead_letters (
    tenant_id  uuid NOT NULL,
    consumer   text NOT NULL,
    event_id   uuid NOT NULL,
    event      jsonb NOT NULL,
    attempts   int NOT NULL,
    last_error text NOT NULL,
    parked_at  timestamptz NOT NULL,
    dead_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, consumer, event_id)
);

-- A tenant's webhook endpoints. The HMAC key is needed to sign, so it cannot be hashed: it is
-- stored sealed with AES-GCM under a key the database never sees (WEBHOOK_SECRET_KEY).
CREATE TABLE webhook_endpoints (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid NOT NULL,
    url             text NOT NULL,
    event_types     text[] NOT NULL CHECK (cardinality(event_types) > 0),
    secret_sealed   bytea NOT NULL,
    status          text NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason text,
    failing_since   timestamptz,          -- start of the current unbroken run of failures
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One delivery per (endpoint, event). body is the exact envelope every attempt sends and
-- signs. retry_from is the attempt count when the current schedule started (a manual retry
-- starts a new one).
CREATE TABLE webhook_deliveries (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    endpoint_id     uuid NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    body            bytea NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    retry_from      int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT webhook_deliveries_event_key UNIQUE (tenant_id, endpoint_id, event_id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (tenant_id, endpoint_id, id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (updated_at) WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    tenant_id    uuid NOT NULL,
    delivery_id  uuid NOT NULL,
    attempt      int NOT NULL,
    attempted_at timestamptz NOT NULL,
    duration_ms  int NOT NULL,
    status_code  int,                     -- NULL when no answer came
    error        text,                    -- NULL on success
    PRIMARY KEY (tenant_id, delivery_id, attempt),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES webhook_deliveries (tenant_id, id) ON DELETE CASCADE
);

SELECT app.isolate_by_tenant('event_inbox'),
       app.isolate_by_tenant('event_retries'),
       app.isolate_by_tenant('event_dead_letters'),
       app.isolate_by_tenant('webhook_endpoints'),
       app.isolate_by_tenant('webhook_deliveries'),
       app.isolate_by_tenant('webhook_attempts');
GRANT SELECT, INSERT, UPDATE, DELETE ON event_inbox, event_retries, event_dead_letters, webhook_endpoints, webhook_deliveries, webhook_attempts TO app_runtime;

-- Cross-tenant paths. Each is SECURITY DEFINER (it runs as the owner, which bypasses RLS),
-- returns only what its one caller needs, and is executable by the runtime role only.

-- The relay's read: unpublished events of every tenant, in the order of their transactions,
-- and only those whose transaction is older than every transaction still running. A
-- transaction that is still open may yet commit an event, and an event published past it
-- would come out of order or, with a cursor, be skipped for good; below the horizon nothing
-- new can appear.
-- +goose StatementBegin
CREATE FUNCTION app.outbox_unpublished(p_limit int)
RETURNS TABLE (tenant_id uuid, id uuid, type text, occurred_at timestamptz, data jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT o.tenant_id, o.id, o.type, o.occurred_at, o.data FROM public.outbox o
     WHERE o.published_at IS NULL AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY o.txid, o.id
     LIMIT least(p_limit, 5000)
$$;
-- +goose StatementEnd

-- The relay's write: marks the events it published, and nothing else.
-- +goose StatementBegin
CREATE FUNCTION app.outbox_mark_published(p_tenant_ids uuid[], p_ids uuid[], p_at timestamptz)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH marked AS (
        UPDATE public.outbox o SET published_at = p_at
          FROM unnest(p_tenant_ids, p_ids) AS m (tenant_id, id)
         WHERE o.tenant_id = m.tenant_id AND o.id = m.id AND o.published_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::int FROM marked
$$;
-- +goose StatementEnd

-- The outbox lag metric: when the oldest unpublished event occurred, nothing else.
-- +goose StatementBegin
CREATE FUNCTION app.outbox_oldest_unpublished()
RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT min(o.occurred_at) FROM public.outbox o WHERE o.published_at IS NULL
$$;
-- +goose StatementEnd

-- The retrier's read: parked events that are due and first in their (tenant, consumer)
-- queue, for the consumers the caller runs. It names the queues only; the retrier reads the
-- events inside the tenant's transaction.
-- +goose StatementBegin
CREATE FUNCTION app.event_retries_due(p_consumers text[], p_now timestamptz, p_limit int)
RETURNS TABLE (tenant_id uuid, consumer text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT r.tenant_id, r.consumer FROM public.event_retries r
     WHERE r.next_attempt_at <= p_now AND r.consumer = ANY (p_consumers)
       AND NOT EXISTS (SELECT FROM public.event_retries h
                        WHERE h.tenant_id = r.tenant_id AND h.consumer = r.consumer AND h.seq < r.seq)
     ORDER BY r.next_attempt_at
     LIMIT least(p_limit, 1000)
$$;
-- +goose StatementEnd

-- The delivery worker's claim: due deliveries of enabled endpoints, leased by pushing their
-- next attempt out by p_lease, so that a crashed worker's claim lapses and another takes it.
-- SKIP LOCKED lets replicas claim side by side. Ids only.
-- +goose StatementBegin
CREATE FUNCTION app.claim_webhook_deliveries(p_now timestamptz, p_lease interval, p_limit int)
RETURNS TABLE (tenant_id uuid, delivery_id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH due AS (
        SELECT d.tenant_id, d.id FROM public.webhook_deliveries d
          JOIN public.webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= p_now AND e.status = 'enabled'
         ORDER BY d.next_attempt_at
         LIMIT least(p_limit, 1000)
           FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE public.webhook_deliveries d SET next_attempt_at = p_now + p_lease
      FROM due WHERE d.tenant_id = due.tenant_id AND d.id = due.id
    RETURNING d.tenant_id, d.id
$$;
-- +goose StatementEnd

-- The reaper: inbox rows and finished deliveries (with their attempts) older than p_before,
-- a batch at a time. The inbox of an event still parked is kept, so it cannot run twice.
-- +goose StatementBegin
CREATE FUNCTION app.reap_events(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH inbox AS (
        SELECT i.tenant_id, i.consumer, i.event_id FROM public.event_inbox i
         WHERE i.received_at < p_before
           AND NOT EXISTS (SELECT FROM public.event_retries r
                            WHERE r.tenant_id = i.tenant_id AND r.consumer = i.consumer AND r.event_id = i.event_id)
         ORDER BY i.received_at LIMIT least(p_limit, 10000)
           FOR UPDATE SKIP LOCKED
    ), inbox_gone AS (
        DELETE FROM public.event_inbox i USING inbox
         WHERE i.tenant_id = inbox.tenant_id AND i.consumer = inbox.consumer AND i.event_id = inbox.event_id
        RETURNING 1
    ), deliveries AS (
        SELECT d.tenant_id, d.id FROM public.webhook_deliveries d
         WHERE d.status <> 'pending' AND d.updated_at < p_before
         ORDER BY d.updated_at LIMIT least(p_limit, 10000)
           FOR UPDATE SKIP LOCKED
    ), deliveries_gone AS (
        DELETE FROM public.webhook_deliveries d USING deliveries
         WHERE d.tenant_id = deliveries.tenant_id AND d.id = deliveries.id
        RETURNING 1
    )
    SELECT ((SELECT count(*) FROM inbox_gone) + (SELECT count(*) FROM deliveries_gone))::int
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.outbox_unpublished(int), app.outbox_mark_published(uuid[], uuid[], timestamptz),
    app.outbox_oldest_unpublished(), app.event_retries_due(text[], timestamptz, int),
    app.claim_webhook_deliveries(timestamptz, interval, int), app.reap_events(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.outbox_unpublished(int), app.outbox_mark_published(uuid[], uuid[], timestamptz),
    app.outbox_oldest_unpublished(), app.event_retries_due(text[], timestamptz, int),
    app.claim_webhook_deliveries(timestamptz, interval, int), app.reap_events(timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.reap_events(timestamptz, int);
DROP FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int);
DROP FUNCTION app.event_retries_due(text[], timestamptz, int);
DROP FUNCTION app.outbox_oldest_unpublished();
DROP FUNCTION app.outbox_mark_published(uuid[], uuid[], timestamptz);
DROP FUNCTION app.outbox_unpublished(int);
DROP TABLE webhook_attempts, webhook_deliveries, webhook_endpoints, event_dead_letters, event_retries, event_inbox;
