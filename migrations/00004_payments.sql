-- Payments on Stripe: a payment row per PaymentIntent, refunds, and the Stripe events that
-- have taken effect.

-- +goose Up
CREATE TABLE payments (
    tenant_id                uuid NOT NULL REFERENCES tenants (id),
    id                       uuid NOT NULL,
    amount                   bigint NOT NULL CHECK (amount > 0),
    currency                 text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    description              text NOT NULL DEFAULT '',
    customer                 text,
    payment_method           text,
    status                   text NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'canceled', 'refunded')),
    stripe_payment_intent_id text,
    amount_refunded          bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    failure_code             text,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT payments_intent_key UNIQUE (tenant_id, stripe_payment_intent_id)
);
-- Stripe's webhooks name the PaymentIntent, not the tenant: the lookup goes by it alone.
CREATE INDEX payments_intent_idx ON payments (stripe_payment_intent_id);

CREATE TABLE refunds (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    payment_id       uuid NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    stripe_refund_id text,
    failure_code     text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);
CREATE INDEX refunds_payment_idx ON refunds (tenant_id, payment_id);

SELECT app.isolate_by_tenant('payments'),
       app.isolate_by_tenant('refunds');
GRANT SELECT, INSERT, UPDATE ON payments, refunds TO app_runtime;

-- Stripe events that took effect, recorded in the transaction of their effect, so each
-- takes effect once however often Stripe delivers it. Platform data: no tenant column.
CREATE TABLE stripe_events (
    event_id     text PRIMARY KEY,
    type         text NOT NULL,
    processed_at timestamptz NOT NULL
);
GRANT SELECT, INSERT ON stripe_events TO app_runtime;

-- The Stripe webhook's lookup: which tenant's payment a PaymentIntent is. It answers only the
-- tenant and payment ids of the one payment that stored this PaymentIntent id.
-- +goose StatementBegin
CREATE FUNCTION app.payment_by_intent(p_intent text)
RETURNS TABLE (tenant_id uuid, payment_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT tenant_id, id FROM public.payments WHERE stripe_payment_intent_id = p_intent
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.payment_by_intent(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.payment_by_intent(text) TO app_runtime;

-- +goose Down
DROP FUNCTION app.payment_by_intent(text);
DROP TABLE stripe_events, refunds, payments;
