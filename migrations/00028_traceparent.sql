-- Tracing across the outbox (docs/operations.md, "Tracing"): an event keeps the W3C
-- traceparent of the transaction that wrote it, and a webhook delivery the one of the consumer
-- that made it, so that the relay, the consumers and each delivery continue the request's
-- trace. NULL while tracing is off. Adding a nullable column rewrites nothing.

-- +goose Up

ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE webhook_deliveries ADD COLUMN traceparent text;

-- The relay's read of the traceparents of a batch it is publishing, only while tracing is on
-- (the relay's own read does not carry them, so that it costs nothing when tracing is off).
-- Like the relay's read, it crosses tenants, and answers only this column of the rows asked for.
-- +goose StatementBegin
CREATE FUNCTION app.outbox_traceparents(p_tenant_ids uuid[], p_ids uuid[])
RETURNS TABLE (id uuid, traceparent text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT o.id, o.traceparent FROM public.outbox o
      JOIN unnest(p_tenant_ids, p_ids) AS m (tenant_id, id) ON o.tenant_id = m.tenant_id AND o.id = m.id
     WHERE o.traceparent IS NOT NULL
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.outbox_traceparents(uuid[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.outbox_traceparents(uuid[], uuid[]) TO app_runtime;

-- +goose Down

DROP FUNCTION app.outbox_traceparents(uuid[], uuid[]);
ALTER TABLE webhook_deliveries DROP COLUMN traceparent;
ALTER TABLE outbox DROP COLUMN traceparent;
