-- Tenant data exports: a job per request, and its archive (a .tar.gz) stored in the database
-- in 1 MiB chunks, so that any replica can serve the download and nothing but PostgreSQL
-- needs to be shared. An archive's chunks are deleted when it expires. See docs/lifecycle.md.

-- +goose Up
CREATE TABLE tenant_exports (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'expired')),
    requested_by text NOT NULL,
    attempt      int NOT NULL DEFAULT 0,   -- the run whose chunks count
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    expires_at   timestamptz,
    size_bytes   bigint,
    chunks       int,
    error        text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tenant_exports_queue_idx ON tenant_exports (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX tenant_exports_expiry_idx ON tenant_exports (expires_at) WHERE status = 'done';

CREATE TABLE tenant_export_chunks (
    tenant_id uuid NOT NULL,
    export_id uuid NOT NULL,
    attempt   int NOT NULL,
    seq       int NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (tenant_id, export_id, attempt, seq),
    FOREIGN KEY (tenant_id, export_id) REFERENCES tenant_exports (tenant_id, id) ON DELETE CASCADE
);
-- The archive is already compressed.
ALTER TABLE tenant_export_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

SELECT app.isolate_by_tenant('tenant_exports'),
       app.isolate_by_tenant('tenant_export_chunks');
GRANT SELECT, INSERT, UPDATE ON tenant_exports TO app_runtime;
GRANT SELECT, INSERT, DELETE ON tenant_export_chunks TO app_runtime;

-- The next export to run, of any tenant: a pending one, or one whose run stopped (started
-- before p_stale and never finished). Its attempt goes up, so chunks of an earlier run that
-- is in fact still going never mix with this one's.
-- +goose StatementBegin
CREATE FUNCTION app.claim_tenant_export(p_now timestamptz, p_stale timestamptz)
RETURNS TABLE (tenant_id uuid, id uuid, attempt int)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.tenant_exports e
       SET status = 'running', started_at = p_now, attempt = e.attempt + 1
     WHERE e.ctid = (SELECT x.ctid FROM public.tenant_exports x
                      WHERE x.status = 'pending' OR (x.status = 'running' AND x.started_at < p_stale)
                      ORDER BY x.created_at LIMIT 1
                        FOR UPDATE SKIP LOCKED)
    RETURNING e.tenant_id, e.id, e.attempt
$$;
-- +goose StatementEnd

-- Exports whose archive expired before p_now, a batch at a time: their chunks are deleted,
-- and the row stays, as expired.
-- +goose StatementBegin
CREATE FUNCTION app.expire_tenant_exports(p_now timestamptz, p_limit int)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    n int;
BEGIN
    WITH due AS (
        SELECT e.tenant_id, e.id FROM public.tenant_exports e
         WHERE e.status = 'done' AND e.expires_at <= p_now
         ORDER BY e.expires_at LIMIT least(p_limit, 1000)
           FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM public.tenant_export_chunks c USING due
         WHERE c.tenant_id = due.tenant_id AND c.export_id = due.id
    )
    UPDATE public.tenant_exports e SET status = 'expired'
      FROM due WHERE e.tenant_id = due.tenant_id AND e.id = due.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.claim_tenant_export(timestamptz, timestamptz), app.expire_tenant_exports(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.claim_tenant_export(timestamptz, timestamptz), app.expire_tenant_exports(timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.expire_tenant_exports(timestamptz, int);
DROP FUNCTION app.claim_tenant_export(timestamptz, timestamptz);
DROP TABLE tenant_export_chunks;
DROP TABLE tenant_exports;
