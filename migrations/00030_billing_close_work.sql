-- The billing period closer reads a chunk's work in one query (docs/metering.md, "Closing
-- periods"): for each tenant app.billing_due_tenants names, its plan, whether a period must be
-- stored (it has none covering p_now), and the bounds of its stored periods due (ended by
-- p_closable, not invoiced), oldest first. With them the closer sends its reads of a tenant
-- (the usage to price included) in the round trip that begins the tenant's transaction,
-- instead of asking for each in turn. Ids, bounds and a plan code: nothing a tenant wrote.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION app.billing_close_work(p_now timestamptz, p_closable timestamptz, p_after uuid, p_limit int)
RETURNS TABLE (tenant_id uuid, plan_code text, to_store boolean, due_starts timestamptz[], due_ends timestamptz[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT w.tenant_id, t.plan_code,
           NOT EXISTS (SELECT FROM public.billing_periods l WHERE l.tenant_id = w.tenant_id AND l.period_end > p_now),
           d.starts, d.ends
      FROM app.billing_due_tenants(p_now, p_closable, p_after, p_limit) w
      JOIN public.tenants t ON t.id = w.tenant_id
     CROSS JOIN LATERAL (
           SELECT array_agg(p.period_start ORDER BY p.period_start) AS starts,
                  array_agg(p.period_end ORDER BY p.period_start) AS ends
             FROM public.billing_periods p
            WHERE p.tenant_id = w.tenant_id AND p.closed_at IS NULL AND p.period_end <= p_closable) d
     ORDER BY w.tenant_id
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.billing_close_work(timestamptz, timestamptz, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.billing_close_work(timestamptz, timestamptz, uuid, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.billing_close_work(timestamptz, timestamptz, uuid, int);
