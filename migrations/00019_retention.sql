-- Retention of the tables that only grew: each gets a reaping function of (before, limit),
-- SECURITY DEFINER, deleting one batch by ctid as those of 00012 do, and the index that
-- finds its due rows without reading the table. The retention job (internal/retention)
-- runs them; what each keeps and why is in docs/lifecycle.md. Usage events are not here:
-- their retention follows the deduplication window (docs/metering.md).
--
-- The indexes are built inside goose's transaction, blocking writes to their table while
-- they build (see 00012): seconds at today's sizes.

-- +goose Up
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX IF NOT EXISTS refresh_tokens_revoked_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_dead_letters_dead_idx ON event_dead_letters (dead_at);
CREATE INDEX IF NOT EXISTS flag_audit_created_idx ON flag_audit (created_at);
CREATE INDEX IF NOT EXISTS stripe_events_processed_idx ON stripe_events (processed_at);
CREATE INDEX IF NOT EXISTS stripe_usage_reports_bucket_idx ON stripe_usage_reports (bucket_start);
CREATE INDEX IF NOT EXISTS usage_rollups_bucket_idx ON usage_rollups (bucket_start);
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending_created_idx ON webhook_deliveries (created_at) WHERE status = 'pending';

-- Refresh tokens that expired, or were revoked, before p_before: neither can be spent again,
-- and a reuse of either is refused as unknown as it was as spent.
-- +goose StatementBegin
CREATE FUNCTION app.reap_refresh_tokens(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.refresh_tokens
         WHERE ctid = ANY (ARRAY(
                   SELECT r.ctid FROM public.refresh_tokens r WHERE r.expires_at < p_before
                    ORDER BY r.expires_at LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED)
                || ARRAY(
                   SELECT r.ctid FROM public.refresh_tokens r WHERE r.revoked_at < p_before
                    ORDER BY r.revoked_at LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION app.reap_event_dead_letters(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.event_dead_letters
         WHERE ctid = ANY (ARRAY(
                   SELECT d.ctid FROM public.event_dead_letters d WHERE d.dead_at < p_before
                    ORDER BY d.dead_at LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION app.reap_flag_audit(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.flag_audit
         WHERE ctid = ANY (ARRAY(
                   SELECT a.ctid FROM public.flag_audit a WHERE a.created_at < p_before
                    ORDER BY a.created_at LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION app.reap_stripe_events(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.stripe_events
         WHERE ctid = ANY (ARRAY(
                   SELECT e.ctid FROM public.stripe_events e WHERE e.processed_at < p_before
                    ORDER BY e.processed_at LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION app.reap_stripe_usage_reports(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.stripe_usage_reports
         WHERE ctid = ANY (ARRAY(
                   SELECT r.ctid FROM public.stripe_usage_reports r WHERE r.bucket_start < p_before
                    ORDER BY r.bucket_start LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- Rollups of buckets before p_before that an invoice has already billed: a bucket at or
-- after the end of its tenant's last invoiced period is kept, however old, since the
-- period closer has yet to read it.
-- +goose StatementBegin
CREATE FUNCTION app.reap_usage_rollups(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.usage_rollups
         WHERE ctid = ANY (ARRAY(
                   SELECT r.ctid FROM public.usage_rollups r
                    WHERE r.bucket_start < p_before
                      AND r.bucket_start < (SELECT max(i.period_end) FROM public.invoices i WHERE i.tenant_id = r.tenant_id)
                    ORDER BY r.bucket_start LIMIT least(p_limit, 10000) FOR UPDATE SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

-- Deliveries still pending, created before p_before, of endpoints that are disabled: they
-- are never attempted while the endpoint stays disabled, and after that long they are
-- given up (a re-enabled endpoint gets the events that come after).
-- +goose StatementBegin
CREATE FUNCTION app.reap_abandoned_deliveries(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.webhook_deliveries
         WHERE ctid = ANY (ARRAY(
                   SELECT d.ctid FROM public.webhook_deliveries d
                     JOIN public.webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
                    WHERE d.status = 'pending' AND d.created_at < p_before AND e.status = 'disabled'
                    ORDER BY d.created_at LIMIT least(p_limit, 10000) FOR UPDATE OF d SKIP LOCKED))
        RETURNING 1
    )
    SELECT count(*)::int FROM gone
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.reap_refresh_tokens(timestamptz, int), app.reap_event_dead_letters(timestamptz, int),
    app.reap_flag_audit(timestamptz, int), app.reap_stripe_events(timestamptz, int),
    app.reap_stripe_usage_reports(timestamptz, int), app.reap_usage_rollups(timestamptz, int),
    app.reap_abandoned_deliveries(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reap_refresh_tokens(timestamptz, int), app.reap_event_dead_letters(timestamptz, int),
    app.reap_flag_audit(timestamptz, int), app.reap_stripe_events(timestamptz, int),
    app.reap_stripe_usage_reports(timestamptz, int), app.reap_usage_rollups(timestamptz, int),
    app.reap_abandoned_deliveries(timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.reap_abandoned_deliveries(timestamptz, int);
DROP FUNCTION app.reap_usage_rollups(timestamptz, int);
DROP FUNCTION app.reap_stripe_usage_reports(timestamptz, int);
DROP FUNCTION app.reap_stripe_events(timestamptz, int);
DROP FUNCTION app.reap_flag_audit(timestamptz, int);
DROP FUNCTION app.reap_event_dead_letters(timestamptz, int);
DROP FUNCTION app.reap_refresh_tokens(timestamptz, int);
DROP INDEX webhook_deliveries_pending_created_idx;
DROP INDEX usage_rollups_bucket_idx;
DROP INDEX stripe_usage_reports_bucket_idx;
DROP INDEX stripe_events_processed_idx;
DROP INDEX flag_audit_created_idx;
DROP INDEX event_dead_letters_dead_idx;
DROP INDEX refresh_tokens_revoked_idx;
DROP INDEX refresh_tokens_expires_idx;
