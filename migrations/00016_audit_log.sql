-- The audit log: one row per mutating request of a tenant principal under /v1 and per
-- operator action on a tenant, written in the transaction of the change it records
-- (docs/lifecycle.md). Append-only for the runtime role: it may insert and read, never
-- change or delete; retention deletes through app.reap_audit_log, and the purge of a
-- deleted tenant through its own function.

-- +goose Up
CREATE TABLE audit_log (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,        -- v7: id order is time order
    occurred_at   timestamptz NOT NULL,
    actor_type    text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'operator')),
    actor_id      text NOT NULL,        -- the user or key id, or the operator's subject
    action        text NOT NULL,        -- "PATCH /v1/projects/{id}": method and route
    resource_type text NOT NULL,
    resource_id   text,
    outcome       text NOT NULL CHECK (outcome IN ('success', 'failure')),
    status        int NOT NULL,
    client_ip     text,
    request_id    text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at);
SELECT app.isolate_by_tenant('audit_log');
GRANT SELECT, INSERT ON audit_log TO app_runtime;

-- Entries older than p_before, a batch at a time, by ctid (as the reapers of 00012).
-- +goose StatementBegin
CREATE FUNCTION app.reap_audit_log(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.audit_log
         WHERE ctid = ANY (ARRAY(
                   SELECT a.ctid FROM public.audit_log a
                    WHERE a.occurred_at < p_before
                    ORDER BY a.occurred_at
                    LIMIT least(p_limit, 10000)
                      FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.reap_audit_log(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reap_audit_log(timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.reap_audit_log(timestamptz, int);
DROP TABLE audit_log;
