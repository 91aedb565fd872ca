-- Costs that must not grow with a table: the outbox lag metric, the deletion of published
-- events past the event log's retention, and the reapers' batches. See docs/events.md and
-- docs/idempotency.md.
--
-- The indexes are built inside goose's transaction (plain CREATE INDEX, not CONCURRENTLY), so
-- each blocks writes to its table while it builds: seconds at the sizes these tables have
-- today. A much larger deployment should build them CONCURRENTLY by hand first; the IF NOT
-- EXISTS lets this migration then pass over them.

-- +goose Up

-- The oldest unpublished event, read about once a second by the lag metric, is the first
-- entry of this index; min() over outbox_unpublished_idx (by txid) had to read the whole
-- backlog, which is largest exactly when the relay is already behind.
CREATE INDEX IF NOT EXISTS outbox_unpublished_occurred_idx ON outbox (occurred_at) WHERE published_at IS NULL;

-- Published events in the order they age out of the event log; unpublished ones are not in
-- it, so the reaper cannot reach them.
CREATE INDEX IF NOT EXISTS outbox_published_occurred_idx ON outbox (occurred_at) WHERE published_at IS NOT NULL;

-- The keys the reaper may delete, in the order it deletes them. The plain index on expires_at
-- also led to keys stopped mid-way, which are kept, and each batch walked past all of them.
CREATE INDEX IF NOT EXISTS idempotency_keys_reapable_idx ON idempotency_keys (expires_at)
    WHERE response_status IS NOT NULL OR recovery_point IN ('started', 'finished');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.outbox_oldest_unpublished()
RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT o.occurred_at FROM public.outbox o
     WHERE o.published_at IS NULL
     ORDER BY o.occurred_at
     LIMIT 1
$$;
-- +goose StatementEnd

-- The reapers below delete by ctid. Deleting USING the batch joined on the primary key was
-- planned without knowing the batch's size (a SQL function's plan is generic), and came out
-- as a hash join over a sequential scan of the whole table: 0.35 s per 1,000 keys at 1M
-- expired keys. A list of ctids is a Tid Scan whatever the table's size; the rows are locked
-- by the batch's FOR UPDATE, so their ctids hold until the DELETE.

-- Published events whose occurred_at is before p_before, a batch at a time. An unpublished
-- event is never deleted, however old: it has not reached its consumers yet.
-- +goose StatementBegin
CREATE FUNCTION app.reap_outbox(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.outbox
         WHERE ctid = ANY (ARRAY(
                   SELECT o.ctid FROM public.outbox o
                    WHERE o.published_at IS NOT NULL AND o.occurred_at < p_before
                    ORDER BY o.occurred_at
                    LIMIT least(p_limit, 10000)
                      FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- As in 00005 (inbox rows and finished deliveries older than p_before; the inbox of an event
-- still parked is kept), deleting by ctid.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.reap_events(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH inbox_gone AS (
        DELETE FROM public.event_inbox
         WHERE ctid = ANY (ARRAY(
                   SELECT i.ctid FROM public.event_inbox i
                    WHERE i.received_at < p_before
                      AND NOT EXISTS (SELECT FROM public.event_retries r
                                       WHERE r.tenant_id = i.tenant_id AND r.consumer = i.consumer AND r.event_id = i.event_id)
                    ORDER BY i.received_at LIMIT least(p_limit, 10000)
                      FOR UPDATE SKIP LOCKED))
        RETURNING 1
    ), deliveries_gone AS (
        DELETE FROM public.webhook_deliveries
         WHERE ctid = ANY (ARRAY(
                   SELECT d.ctid FROM public.webhook_deliveries d
                    WHERE d.status <> 'pending' AND d.updated_at < p_before
                    ORDER BY d.updated_at LIMIT least(p_limit, 10000)
                      FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT ((SELECT count(*) FROM inbox_gone) + (SELECT count(*) FROM deliveries_gone))::int
$$;
-- +goose StatementEnd

-- As in 00003 (expired keys, except those stopped mid-way), through the index above and by ctid.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.reap_idempotency_keys(p_before timestamptz, p_limit int) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.idempotency_keys
         WHERE ctid = ANY (ARRAY(
                   SELECT k.ctid FROM public.idempotency_keys k
                    WHERE k.expires_at < p_before
                      AND (k.response_status IS NOT NULL OR k.recovery_point IN ('started', 'finished'))
                    ORDER BY k.expires_at
                    LIMIT least(p_limit, 10000)
                      FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.reap_outbox(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reap_outbox(timestamptz, int) TO app_runtime;

-- +goose Down
-- The functions as 00003 and 00005 left them; CREATE OR REPLACE keeps their grants.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.reap_idempotency_keys(p_before timestamptz, p_limit int) RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH doomed AS (
        SELECT tenant_id, principal_id, key FROM public.idempotency_keys
         WHERE expires_at < p_before
           AND (response_status IS NOT NULL OR recovery_point IN ('started', 'finished'))
         ORDER BY expires_at
         LIMIT least(p_limit, 10000)
           FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM public.idempotency_keys k USING doomed d
         WHERE k.tenant_id = d.tenant_id AND k.principal_id = d.principal_id AND k.key = d.key
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.reap_events(p_before timestamptz, p_limit int)
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.outbox_oldest_unpublished()
RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT min(o.occurred_at) FROM public.outbox o WHERE o.published_at IS NULL
$$;
-- +goose StatementEnd

DROP FUNCTION app.reap_outbox(timestamptz, int);
DROP INDEX idempotency_keys_reapable_idx;
DROP INDEX outbox_published_occurred_idx;
DROP INDEX outbox_unpublished_occurred_idx;
