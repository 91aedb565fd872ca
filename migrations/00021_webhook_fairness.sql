-- Webhook deliveries flow continuously and fairly (docs/events.md, "Fairness"): a claim
-- takes, for each endpoint, its oldest due deliveries up to the endpoint's cap of deliveries
-- in flight (1 by default: in order), and for each tenant up to the tenant's share, counting
-- what every replica has in flight. claimed_until marks a delivery in flight: set by the
-- claim, cleared when its attempt is recorded; a claim whose replica died lapses with it.
--
-- The indexes are built inside goose's transaction; see 00012_retention.sql.

-- +goose Up
ALTER TABLE webhook_deliveries ADD COLUMN claimed_until timestamptz;

-- The endpoints that have pending deliveries, walked one endpoint at a time (a skip scan),
-- and whether any of them is due.
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending_endpoint_idx
    ON webhook_deliveries (tenant_id, endpoint_id, next_attempt_at) WHERE status = 'pending';
-- An endpoint's pending deliveries in the order of their events (ids are UUIDv7, made at
-- the fan-out in event order).
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending_order_idx
    ON webhook_deliveries (tenant_id, endpoint_id, id) WHERE status = 'pending';
-- What is in flight, per endpoint and tenant.
CREATE INDEX IF NOT EXISTS webhook_deliveries_claimed_idx
    ON webhook_deliveries (tenant_id, endpoint_id) WHERE claimed_until IS NOT NULL;

DROP FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int);

-- The deliverer's claim: up to p_limit due deliveries of enabled endpoints, at most
-- p_per_endpoint in flight per endpoint (its oldest first) and p_per_tenant per tenant,
-- tenants taken in turn. The endpoints are locked first (SKIP LOCKED), in a statement of
-- their own, so that the second statement, with a snapshot taken after the locks, counts
-- every claim committed before: two replicas never both fill one endpoint's cap. The
-- tenant's share is counted the same way but not locked: two replicas claiming for one
-- tenant at the same instant may overshoot it by a claim each. Ids only.
-- +goose StatementBegin
CREATE FUNCTION app.claim_webhook_deliveries(p_now timestamptz, p_lease interval, p_limit int,
                                              p_per_endpoint int, p_per_tenant int)
RETURNS TABLE (tenant_id uuid, delivery_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_tenants   uuid[];
    v_endpoints uuid[];
BEGIN
    SELECT array_agg(l.tenant_id), array_agg(l.id) INTO v_tenants, v_endpoints FROM (
        SELECT e.tenant_id, e.id FROM public.webhook_endpoints e
         WHERE e.status = 'enabled' AND (e.tenant_id, e.id) IN (
            WITH RECURSIVE pending AS (
                (SELECT d.tenant_id, d.endpoint_id FROM public.webhook_deliveries d
                  WHERE d.status = 'pending' ORDER BY d.tenant_id, d.endpoint_id LIMIT 1)
                UNION ALL
                SELECT n.tenant_id, n.endpoint_id FROM pending p CROSS JOIN LATERAL (
                    SELECT d.tenant_id, d.endpoint_id FROM public.webhook_deliveries d
                     WHERE d.status = 'pending' AND (d.tenant_id, d.endpoint_id) > (p.tenant_id, p.endpoint_id)
                     ORDER BY d.tenant_id, d.endpoint_id LIMIT 1) n
            ), due AS (
                SELECT p.tenant_id, p.endpoint_id,
                       row_number() OVER (PARTITION BY p.tenant_id ORDER BY p.endpoint_id) AS turn
                  FROM pending p
                 WHERE EXISTS (SELECT FROM public.webhook_deliveries d
                                WHERE d.tenant_id = p.tenant_id AND d.endpoint_id = p.endpoint_id
                                  AND d.status = 'pending' AND d.next_attempt_at <= p_now)
            )
            SELECT due.tenant_id, due.endpoint_id FROM due ORDER BY due.turn LIMIT 1000)
           FOR NO KEY UPDATE OF e SKIP LOCKED
    ) l;
    IF v_endpoints IS NULL THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH locked AS (
        SELECT * FROM unnest(v_tenants, v_endpoints) AS l (tenant_id, endpoint_id)
    ), busy AS (
        SELECT d.tenant_id, d.endpoint_id, count(*) AS n FROM public.webhook_deliveries d
         WHERE d.tenant_id = ANY (v_tenants) AND d.claimed_until > p_now AND d.status = 'pending'
         GROUP BY d.tenant_id, d.endpoint_id
    ), busy_tenant AS (
        SELECT b.tenant_id, sum(b.n) AS n FROM busy b GROUP BY b.tenant_id
    ), heads AS (
        SELECT h.tenant_id, h.endpoint_id, h.id,
               coalesce(b.n, 0) + row_number() OVER (PARTITION BY h.tenant_id, h.endpoint_id ORDER BY h.id) AS ep_slot
          FROM locked l
          LEFT JOIN busy b ON b.tenant_id = l.tenant_id AND b.endpoint_id = l.endpoint_id
         CROSS JOIN LATERAL (
            SELECT d.tenant_id, d.endpoint_id, d.id FROM public.webhook_deliveries d
             WHERE d.tenant_id = l.tenant_id AND d.endpoint_id = l.endpoint_id
               AND d.status = 'pending' AND d.next_attempt_at <= p_now
             ORDER BY d.id LIMIT greatest(p_per_endpoint - coalesce(b.n, 0), 0)) h
    ), turns AS (
        SELECT h.tenant_id, h.id,
               row_number() OVER (PARTITION BY h.tenant_id ORDER BY h.ep_slot, h.id) AS turn,
               coalesce(bt.n, 0) AS tenant_busy
          FROM heads h LEFT JOIN busy_tenant bt ON bt.tenant_id = h.tenant_id
         WHERE h.ep_slot <= p_per_endpoint
    ), chosen AS (
        SELECT t.tenant_id, t.id FROM turns t
         WHERE t.tenant_busy + t.turn <= p_per_tenant
         ORDER BY t.turn, t.id LIMIT least(p_limit, 1000)
    )
    UPDATE public.webhook_deliveries d SET next_attempt_at = p_now + p_lease, claimed_until = p_now + p_lease
      FROM chosen
     WHERE d.tenant_id = chosen.tenant_id AND d.id = chosen.id
       AND d.status = 'pending' AND d.next_attempt_at <= p_now
    RETURNING d.tenant_id, d.id;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int, int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int, int, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int, int, int);
-- +goose StatementBegin
CREATE FUNCTION app.claim_webhook_deliveries(p_now timestamptz, p_lease interval, p_limit int)
RETURNS TABLE (tenant_id uuid, delivery_id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH due AS (
        SELECT d.tenant_id, d.id FROM public.webhook_deliveries d
          JOIN public.webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= p_now AND e.status = 'enabled'
         ORDER BY d.next_attempt_at
         LIMIT least(p_limit, 1000)
           FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE public.webhook_deliveries d SET next_attempt_at = p_now + p_lease
      FROM due WHERE d.tenant_id = due.tenant_id AND d.id = due.id
    RETURNING d.tenant_id, d.id
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.claim_webhook_deliveries(timestamptz, interval, int) TO app_runtime;
DROP INDEX webhook_deliveries_claimed_idx, webhook_deliveries_pending_order_idx, webhook_deliveries_pending_endpoint_idx;
ALTER TABLE webhook_deliveries DROP COLUMN claimed_until;
