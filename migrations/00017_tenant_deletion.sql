-- Tenant deletion: a tenant asked to be deleted is pending_deletion until purge_after (the
-- grace period, in which its owner can restore it); then the purge deletes every row of
-- the tenant, table by table in batches, and leaves a tombstone (status deleted) that the
-- kept invoices, payments and refunds still point at. See docs/lifecycle.md.

-- +goose Up
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('active', 'suspended', 'pending_deletion', 'deleted'));
ALTER TABLE tenants ADD COLUMN purge_after timestamptz;
ALTER TABLE tenants ADD COLUMN deleted_at timestamptz;
CREATE INDEX tenants_purge_idx ON tenants (purge_after) WHERE status = 'pending_deletion';

-- The tenants whose grace has passed, for the purge job.
-- +goose StatementBegin
CREATE FUNCTION app.tenants_due_for_purge(p_now timestamptz, p_limit int)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id FROM public.tenants
     WHERE status = 'pending_deletion' AND purge_after <= p_now
     ORDER BY purge_after LIMIT least(p_limit, 1000)
$$;
-- +goose StatementEnd

-- One batch of a due tenant's rows of one table. The caller discovers the tables from the
-- catalog; this checks what it is asked: the tenant must be due, the table a plain or
-- partitioned table of public with a tenant_id column, and not one the law makes us keep.
-- Rows go by ctid within the tenant (a ctid alone is not unique across partitions).
-- +goose StatementBegin
CREATE FUNCTION app.purge_tenant_rows(p_tenant uuid, p_table text, p_now timestamptz, p_limit int)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    n int;
BEGIN
    IF NOT EXISTS (SELECT FROM public.tenants t
                    WHERE t.id = p_tenant AND t.status = 'pending_deletion' AND t.purge_after <= p_now) THEN
        RAISE EXCEPTION 'tenant % is not due for purge', p_tenant USING ERRCODE = '55000';
    END IF;
    IF p_table IN ('invoices', 'payments', 'refunds') OR NOT EXISTS (
        SELECT FROM pg_class c
          JOIN pg_namespace ns ON ns.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE ns.nspname = 'public' AND c.relname = p_table AND c.relkind IN ('r', 'p')
           AND a.attname = 'tenant_id' AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'table % is not purged', p_table USING ERRCODE = '42501';
    END IF;
    EXECUTE format(
        'WITH gone AS (DELETE FROM public.%1$I WHERE tenant_id = $1 AND ctid = ANY (ARRAY('
        '    SELECT ctid FROM public.%1$I WHERE tenant_id = $1 LIMIT $2 FOR UPDATE SKIP LOCKED))'
        '  RETURNING 1) SELECT count(*)::int FROM gone', p_table)
        INTO n USING p_tenant, least(p_limit, 10000);
    RETURN n;
END
$$;
-- +goose StatementEnd

-- The purge's last step, once every purged table is empty of the tenant: the tenant becomes
-- a tombstone without its name or slug (the slug is free again), and the payments kept for
-- the books lose what could name a person. Answers false if the tenant was not (or no
-- longer) due, so the caller emits tenant.deleted once.
-- +goose StatementBegin
CREATE FUNCTION app.finish_tenant_purge(p_tenant uuid, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE public.tenants
       SET name = 'deleted tenant', slug = 'deleted-' || id::text, status = 'deleted',
           default_payment_method = NULL, rate_limit = NULL, purge_after = NULL,
           deleted_at = p_now, updated_at = p_now
     WHERE id = p_tenant AND status = 'pending_deletion' AND purge_after <= p_now;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE public.payments SET description = '', customer = NULL, payment_method = NULL
     WHERE tenant_id = p_tenant;
    RETURN true;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.tenants_due_for_purge(timestamptz, int), app.purge_tenant_rows(uuid, text, timestamptz, int),
    app.finish_tenant_purge(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenants_due_for_purge(timestamptz, int), app.purge_tenant_rows(uuid, text, timestamptz, int),
    app.finish_tenant_purge(uuid, timestamptz) TO app_runtime;

-- +goose Down
DROP FUNCTION app.finish_tenant_purge(uuid, timestamptz);
DROP FUNCTION app.purge_tenant_rows(uuid, text, timestamptz, int);
DROP FUNCTION app.tenants_due_for_purge(timestamptz, int);
DROP INDEX tenants_purge_idx;
ALTER TABLE tenants DROP COLUMN deleted_at;
ALTER TABLE tenants DROP COLUMN purge_after;
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check CHECK (status IN ('active', 'suspended'));
