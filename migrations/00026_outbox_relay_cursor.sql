-- The relay's read, faster and less held back (docs/events.md, "The outbox and the relay"):
--
-- - The horizon is this database's: transactions of other databases on the same server
--   cannot write this outbox, so they no longer hold publication back. A transaction id still
--   running in the snapshot counts unless pg_stat_activity shows it belongs to a backend of
--   another database (xids are unique, and a backend never changes database); one it does
--   not show (ended since, prepared, a background worker) counts, to be safe.
-- - The read starts after a position (txid, id) the relay passes in: the last event it marked.
--   Rows below the horizon cannot appear later, so nothing unpublished lies before it, and the
--   scan no longer steps over the index entries of events published since the last vacuum.
--   The row's txid is returned so the relay can keep the position.

-- +goose Up

DROP FUNCTION app.outbox_unpublished(int);

-- +goose StatementBegin
CREATE FUNCTION app.outbox_unpublished(p_after_txid xid8, p_after_id uuid, p_limit int)
RETURNS TABLE (tenant_id uuid, id uuid, type text, occurred_at timestamptz, data jsonb, txid xid8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH elsewhere AS (
        SELECT a.backend_xid FROM pg_stat_get_activity(NULL) a
         WHERE a.backend_xid IS NOT NULL
           AND a.datid <> (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    ), horizon AS (
        SELECT coalesce(
                   (SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
                     WHERE x::xid NOT IN (SELECT backend_xid FROM elsewhere)),
                   pg_snapshot_xmax(pg_current_snapshot())) AS h
    )
    SELECT o.tenant_id, o.id, o.type, o.occurred_at, o.data, o.txid FROM public.outbox o
     WHERE o.published_at IS NULL
       AND o.txid < (SELECT h FROM horizon)
       AND (o.txid, o.id) > (p_after_txid, p_after_id)
     ORDER BY o.txid, o.id
     LIMIT least(p_limit, 5000)
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.outbox_unpublished(xid8, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.outbox_unpublished(xid8, uuid, int) TO app_runtime;

-- +goose Down

DROP FUNCTION app.outbox_unpublished(xid8, uuid, int);

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

REVOKE ALL ON FUNCTION app.outbox_unpublished(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.outbox_unpublished(int) TO app_runtime;
