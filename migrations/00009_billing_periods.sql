-- +goose Up
-- A tenant's billing periods, each stored when it begins so that its bounds never move: a
-- change of time zone applies from the next period, and chained end to start the periods
-- cover every instant once. The closer's standing on each period is kept with it, so that a
-- period it cannot finalize is retried and shown to the operator, never skipped in silence.
CREATE TABLE billing_periods (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    timezone        text NOT NULL, -- the zone the period began in, which placed its end
    close_attempts  int NOT NULL DEFAULT 0,
    close_error     text,          -- the last failure to finalize it; NULL once it is invoiced
    close_failed_at timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, period_start),
    CHECK (period_end > period_start)
);
SELECT app.isolate_by_tenant('billing_periods');
GRANT SELECT, INSERT, UPDATE ON billing_periods TO app_runtime;

-- The operator's list of periods the closer has failed to finalize, across tenants: ids,
-- bounds and the error, nothing a tenant wrote.
-- +goose StatementBegin
CREATE FUNCTION app.failing_billing_periods(p_limit int)
RETURNS TABLE (tenant_id uuid, period_start timestamptz, period_end timestamptz,
               close_attempts int, close_error text, close_failed_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT tenant_id, period_start, period_end, close_attempts, close_error, close_failed_at
      FROM public.billing_periods WHERE close_error IS NOT NULL
     ORDER BY close_failed_at DESC LIMIT least(p_limit, 1000)
$$;
-- +goose StatementEnd
CREATE INDEX billing_periods_failing_idx ON billing_periods (close_failed_at) WHERE close_error IS NOT NULL;
REVOKE ALL ON FUNCTION app.failing_billing_periods(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.failing_billing_periods(int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.failing_billing_periods(int);
DROP TABLE billing_periods;
