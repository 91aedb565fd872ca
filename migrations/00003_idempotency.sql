-- Idempotency keys: one row per (tenant, principal, key), holding the request's fingerprint,
-- the lock of the request running it, its recovery point, and the stored answer.

-- +goose Up
CREATE TABLE idempotency_keys (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    principal_id     uuid NOT NULL,
    key              text NOT NULL,
    id               uuid NOT NULL,         -- stable id of this key row: seeds keys sent to Stripe
    method           text NOT NULL,
    path             text NOT NULL,
    body_sha256      bytea NOT NULL,
    locked_at        timestamptz,           -- set while a request runs under the key
    recovery_point   text NOT NULL DEFAULT 'started',
    recovery_data    jsonb,                 -- what a resumed request needs (e.g. the payment id)
    response_status  int,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, principal_id, key)
);
SELECT app.isolate_by_tenant('idempotency_keys');
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO app_runtime;
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_abandoned_idx ON idempotency_keys (created_at)
    WHERE response_status IS NULL;

-- The reaper deletes expired keys of every tenant, a batch at a time; SKIP LOCKED lets
-- several replicas reap at once without waiting on each other. A key stopped mid-way (past a
-- recovery point, unanswered) is kept: it is the completer's only trace of that work.
-- +goose StatementBegin
CREATE FUNCTION app.reap_idempotency_keys(p_before timestamptz, p_limit int) RETURNS int
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

-- The completer finds keys whose request stopped mid-way past a recovery point, with no answer
-- stored: abandoned by a crash (a lock older than p_stale) or released after a failure and not
-- retried since. It works across tenants and returns only what identifies the keys.
-- +goose StatementBegin
CREATE FUNCTION app.abandoned_idempotency_keys(p_path_prefix text, p_stale timestamptz, p_limit int)
RETURNS TABLE (tenant_id uuid, principal_id uuid, key text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT k.tenant_id, k.principal_id, k.key FROM public.idempotency_keys k
     WHERE k.response_status IS NULL AND coalesce(k.locked_at, k.created_at) < p_stale
       AND k.path LIKE p_path_prefix || '%' AND k.recovery_point NOT IN ('started', 'finished')
     ORDER BY k.created_at
     LIMIT least(p_limit, 1000)
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.reap_idempotency_keys(timestamptz, int),
    app.abandoned_idempotency_keys(text, timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reap_idempotency_keys(timestamptz, int),
    app.abandoned_idempotency_keys(text, timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.abandoned_idempotency_keys(text, timestamptz, int);
DROP FUNCTION app.reap_idempotency_keys(timestamptz, int);
DROP TABLE idempotency_keys;
