-- Usage metering: meters, raw usage events deduplicated per (tenant, source, id), 15-minute
-- rollups, plans' quotas and charges, invoices.

-- +goose Up
CREATE TABLE meters (
    key            text PRIMARY KEY CHECK (key ~ '^[a-z0-9][a-z0-9_]{0,62}$'),
    event_type     text NOT NULL,
    aggregation    text NOT NULL CHECK (aggregation IN ('sum', 'count', 'max', 'unique_count', 'latest')),
    value_property text,
    group_by       jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((aggregation = 'count') = (value_property IS NULL))
);
GRANT SELECT, INSERT, UPDATE ON meters TO app_runtime;
-- Built in: every authenticated API request of a tenant.
INSERT INTO meters (key, event_type, aggregation) VALUES ('api_requests', 'api_request', 'count');

ALTER TABLE plans ADD COLUMN quotas jsonb NOT NULL DEFAULT '{}';
ALTER TABLE plans ADD COLUMN charges jsonb NOT NULL DEFAULT '[]';
UPDATE plans SET quotas = '{"api_requests": {"limit": 100000, "enforcement": "hard"}}' WHERE code = 'free';
UPDATE plans SET quotas = '{"api_requests": {"limit": 5000000, "enforcement": "soft"}}',
                 charges = '[{"meter": "api_requests", "model": "graduated", "tiers": [
                     {"up_to": 1000000, "unit_price": "0", "flat_fee": "0"},
                     {"up_to": null, "unit_price": "0.00002", "flat_fee": "0"}]}]'
 WHERE code = 'pro';
UPDATE plans SET charges = '[{"meter": "api_requests", "model": "volume", "tiers": [
                     {"up_to": 10000000, "unit_price": "0", "flat_fee": "0"},
                     {"up_to": null, "unit_price": "0.00001", "flat_fee": "0"}]}]'
 WHERE code = 'enterprise';

-- Raw usage events. The primary key is the dedupe key: an event is stored once per
-- (tenant, source, id), forever (at least the 35 days the contract promises).
CREATE TABLE usage_events (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    source      text NOT NULL,
    id          text NOT NULL,
    type        text NOT NULL,
    subject     text,
    time        timestamptz NOT NULL,
    data        jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, source, id)
);
CREATE INDEX usage_events_type_time_idx ON usage_events (tenant_id, type, time);

-- Sums and counts per meter, 15-minute bucket and group: fine enough that day and month
-- boundaries of +05:30 and +05:45 time zones fall on bucket edges.
CREATE TABLE usage_rollups (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    meter_key    text NOT NULL,
    bucket_start timestamptz NOT NULL,
    group_key    jsonb NOT NULL DEFAULT '{}',
    value        numeric NOT NULL,
    events       bigint NOT NULL,
    PRIMARY KEY (tenant_id, meter_key, bucket_start, group_key)
);

CREATE TABLE invoices (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    currency     text NOT NULL,
    plan_code    text NOT NULL,
    lines        jsonb NOT NULL,
    subtotal     bigint NOT NULL,
    total        bigint NOT NULL,
    status       text NOT NULL CHECK (status IN ('open', 'paid', 'payment_failed')),
    payment_id   uuid,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT invoices_period_key UNIQUE (tenant_id, period_start)
);

ALTER TABLE tenants ADD COLUMN default_payment_method text;

-- A tenant's Stripe customer, created the first time it is needed.
CREATE TABLE billing_customers (
    tenant_id          uuid PRIMARY KEY REFERENCES tenants (id),
    stripe_customer_id text NOT NULL,
    created_at         timestamptz NOT NULL
);

-- What was reported to Stripe as Billing Meter Events, per tenant, meter and 15-minute
-- bucket: the running total reported. Stripe forgets identifiers after 24 hours; this ledger
-- does not, so a re-run sends only the difference, under an identifier of its own.
CREATE TABLE stripe_usage_reports (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    meter_key    text NOT NULL,
    bucket_start timestamptz NOT NULL,
    reported     numeric NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, meter_key, bucket_start)
);

SELECT app.isolate_by_tenant('usage_events'),
       app.isolate_by_tenant('usage_rollups'),
       app.isolate_by_tenant('invoices'),
       app.isolate_by_tenant('billing_customers'),
       app.isolate_by_tenant('stripe_usage_reports');
GRANT SELECT, INSERT, UPDATE ON usage_events, usage_rollups, invoices, billing_customers, stripe_usage_reports TO app_runtime;

-- The period closer's list of tenants, with what it needs to compute their periods.
-- +goose StatementBegin
CREATE FUNCTION app.billing_tenants(p_after uuid, p_limit int)
RETURNS TABLE (tenant_id uuid, created_at timestamptz, timezone text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id, created_at, timezone FROM public.tenants
     WHERE p_after IS NULL OR id > p_after
     ORDER BY id LIMIT least(p_limit, 1000)
$$;
-- +goose StatementEnd
-- The collector's work: finalized invoices still open, across tenants, ids only.
-- +goose StatementBegin
CREATE FUNCTION app.open_invoices(p_limit int)
RETURNS TABLE (tenant_id uuid, invoice_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT tenant_id, id FROM public.invoices WHERE status = 'open' AND total > 0
     ORDER BY created_at LIMIT least(p_limit, 1000)
$$;
-- +goose StatementEnd
CREATE INDEX invoices_open_idx ON invoices (created_at) WHERE status = 'open';

REVOKE ALL ON FUNCTION app.billing_tenants(uuid, int), app.open_invoices(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.billing_tenants(uuid, int), app.open_invoices(int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.open_invoices(int);
DROP FUNCTION app.billing_tenants(uuid, int);
DROP TABLE stripe_usage_reports, billing_customers;
ALTER TABLE tenants DROP COLUMN default_payment_method;
DROP TABLE invoices, usage_rollups, usage_events, meters;
ALTER TABLE plans DROP COLUMN charges, DROP COLUMN quotas;
