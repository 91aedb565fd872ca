-- API keys record the user who created them. A key never acts above its creator's current
-- role, and is revoked when its creator is deleted; keys from before this rule answer to their
-- tenant's first owner.

-- +goose Up

ALTER TABLE api_keys ADD COLUMN created_by uuid;

-- Migrations run as the tables' owner, and FORCE ROW LEVEL SECURITY binds the owner too unless
-- it is a superuser: the backfill lifts it for this transaction, which puts it back.
ALTER TABLE api_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
UPDATE api_keys k SET created_by = (
    SELECT u.id FROM users u
     WHERE u.tenant_id = k.tenant_id AND u.role = 'owner'
     ORDER BY u.created_at, u.id LIMIT 1);
-- Every tenant keeps an owner, so this should find no key; one it finds (a tenant without
-- users) is revoked rather than left acting for nobody.
UPDATE api_keys SET revoked_at = now() WHERE created_by IS NULL AND revoked_at IS NULL;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

-- Deleting a user revokes their keys in the same transaction; the key then keeps no creator.
-- The check holds the service to it: a deletion that left a creator's key active fails.
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_creator_fkey FOREIGN KEY (tenant_id, created_by)
        REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
    ADD CONSTRAINT api_keys_active_creator_check CHECK (created_by IS NOT NULL OR revoked_at IS NOT NULL);
CREATE INDEX api_keys_creator_idx ON api_keys (tenant_id, created_by);

-- The lookup answers the creator too; a new return type needs a new function.
DROP FUNCTION app.api_key_for_auth(uuid);
-- +goose StatementBegin
CREATE FUNCTION app.api_key_for_auth(p_id uuid)
RETURNS TABLE (tenant_id uuid, role text, secret_hash bytea, rate_limit jsonb, created_by uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE public.api_keys k SET last_used_at = now()
     WHERE k.id = p_id AND k.revoked_at IS NULL
       AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    RETURN QUERY
        SELECT k.tenant_id, k.role, k.secret_hash, k.rate_limit, k.created_by
          FROM public.api_keys k WHERE k.id = p_id AND k.revoked_at IS NULL;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.api_key_for_auth(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_for_auth(uuid) TO app_runtime;

-- +goose Down

DROP FUNCTION app.api_key_for_auth(uuid);
-- +goose StatementBegin
CREATE FUNCTION app.api_key_for_auth(p_id uuid)
RETURNS TABLE (tenant_id uuid, role text, secret_hash bytea, rate_limit jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE public.api_keys k SET last_used_at = now()
     WHERE k.id = p_id AND k.revoked_at IS NULL
       AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    RETURN QUERY
        SELECT k.tenant_id, k.role, k.secret_hash, k.rate_limit
          FROM public.api_keys k WHERE k.id = p_id AND k.revoked_at IS NULL;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.api_key_for_auth(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_for_auth(uuid) TO app_runtime;

-- Keys revoked with their creator stay revoked.
ALTER TABLE api_keys DROP COLUMN created_by;
