-- The billing period closer finds its work with one indexed query instead of walking every
-- tenant (docs/metering.md, "Closing periods"): a period records when it was invoiced
-- (closed_at), and the periods not yet invoiced are indexed by their end, so a run with
-- nothing due reads nothing but an empty index range and the tenants without a period.
--
-- The index is built inside goose's transaction; see 00012_retention.sql.

-- +goose Up
ALTER TABLE billing_periods ADD COLUMN closed_at timestamptz;
UPDATE billing_periods p SET closed_at = i.created_at
  FROM invoices i WHERE i.tenant_id = p.tenant_id AND i.period_start = p.period_start;
CREATE INDEX IF NOT EXISTS billing_periods_open_idx ON billing_periods (period_end) WHERE closed_at IS NULL;

-- The closer's work: tenants with a period to finalize (ended by p_closable, not invoiced),
-- with a last stored period that has ended by p_now (the next one must be stored), or with
-- no period at all; in id order after p_after. Ids only.
-- +goose StatementBegin
CREATE FUNCTION app.billing_due_tenants(p_now timestamptz, p_closable timestamptz, p_after uuid, p_limit int)
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT w.tenant_id FROM (
        SELECT p.tenant_id FROM public.billing_periods p
         WHERE p.closed_at IS NULL AND p.period_end <= p_now
           AND (p.period_end <= p_closable
                OR NOT EXISTS (SELECT FROM public.billing_periods n
                                WHERE n.tenant_id = p.tenant_id AND n.period_start = p.period_end))
        UNION
        SELECT t.id FROM public.tenants t
         WHERE NOT EXISTS (SELECT FROM public.billing_periods p WHERE p.tenant_id = t.id)
    ) w
     WHERE p_after IS NULL OR w.tenant_id > p_after
     ORDER BY w.tenant_id LIMIT least(p_limit, 10000)
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.billing_due_tenants(timestamptz, timestamptz, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.billing_due_tenants(timestamptz, timestamptz, uuid, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.billing_due_tenants(timestamptz, timestamptz, uuid, int);
DROP INDEX billing_periods_open_idx;
ALTER TABLE billing_periods DROP COLUMN closed_at;
