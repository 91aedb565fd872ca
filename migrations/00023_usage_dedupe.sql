-- Usage events: a bounded dedupe window and raw events that age out (docs/metering.md,
-- "Dedupe and retention").
--
-- Until now the primary key of usage_events, (tenant, source, id) on text, was the dedupe key,
-- kept forever: at 10M events its index was 1.6 GB of random keys, every ingested event
-- probed it twice, and ingestion slowed 3x. Now:
--   * usage_dedupe holds a compact key per event (16 bytes of SHA-256 of source and id) for the
--     dedupe window the contract promises (35 days after receipt), and the reaper deletes keys
--     past it, so its index holds the window's keys, not history's;
--   * usage_events is keyed by (tenant, time, source, id): inserts go to the index's recent
--     end, and the reaper deletes old raw events in time order. Rollups stay.
--
-- Like 00012, this runs inside goose's transaction: copying the keys of the last 35 days and
-- building the new primary key take a minute or two per 10M events and block ingestion
-- meanwhile.

-- +goose Up
CREATE TABLE usage_dedupe (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    key         uuid NOT NULL,   -- app.usage_dedupe_key(source, id)
    received_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
-- The reaper's order.
CREATE INDEX usage_dedupe_received_idx ON usage_dedupe (received_at);
SELECT app.isolate_by_tenant('usage_dedupe');
GRANT SELECT, INSERT ON usage_dedupe TO app_runtime;

-- The dedupe key of an event; metering.DedupeKey computes the same in Go. The length prefix
-- keeps ("ab", "c") and ("a", "bc") apart.
-- +goose StatementBegin
CREATE FUNCTION app.usage_dedupe_key(p_source text, p_id text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(substring(sha256(convert_to(octet_length(convert_to(p_source, 'UTF8')) || ':' || p_source || p_id, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
$$;
-- +goose StatementEnd

INSERT INTO usage_dedupe (tenant_id, key, received_at)
SELECT tenant_id, app.usage_dedupe_key(source, id), received_at
  FROM usage_events
 WHERE received_at > now() - interval '36 days'
ON CONFLICT DO NOTHING;

ALTER TABLE usage_events DROP CONSTRAINT usage_events_pkey;
ALTER TABLE usage_events ADD PRIMARY KEY (tenant_id, time, source, id);

-- The reapers, a batch at a time and by ctid as in 00012.
-- Dedupe keys received before p_before.
-- +goose StatementBegin
CREATE FUNCTION app.reap_usage_dedupe(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.usage_dedupe
         WHERE ctid = ANY (ARRAY(
                   SELECT d.ctid FROM public.usage_dedupe d
                    WHERE d.received_at < p_before
                    ORDER BY d.received_at
                    LIMIT least(p_limit, 10000)
                      FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- Raw events before p_before that also fall before the end of their tenant's last invoice:
-- a tenant never invoiced keeps all of them, and its unbilled period stays exact. The
-- tenants are walked through the primary key, a short range of each.
-- +goose StatementBegin
CREATE FUNCTION app.reap_usage_events(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.usage_events
         WHERE ctid = ANY (ARRAY(
                   SELECT e.ctid
                     FROM public.tenants t
                     CROSS JOIN LATERAL (SELECT max(i.period_end) AS until FROM public.invoices i WHERE i.tenant_id = t.id) f
                     CROSS JOIN LATERAL (
                          SELECT u.ctid FROM public.usage_events u
                           WHERE u.tenant_id = t.id AND u.time < p_before AND u.time < f.until
                           ORDER BY u.time
                           LIMIT least(p_limit, 10000)
                             FOR UPDATE SKIP LOCKED) e
                    WHERE f.until IS NOT NULL
                    LIMIT least(p_limit, 10000)))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.reap_usage_dedupe(timestamptz, int), app.reap_usage_events(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reap_usage_dedupe(timestamptz, int), app.reap_usage_events(timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.reap_usage_events(timestamptz, int);
DROP FUNCTION app.reap_usage_dedupe(timestamptz, int);
ALTER TABLE usage_events DROP CONSTRAINT usage_events_pkey;
ALTER TABLE usage_events ADD PRIMARY KEY (tenant_id, source, id);
DROP FUNCTION app.usage_dedupe_key(text, text);
DROP TABLE usage_dedupe;
