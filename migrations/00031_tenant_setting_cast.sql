-- app.current_tenant_id() as the setting cast to uuid, nothing more: COALESCE, NULLIF and the
-- PL/pgSQL app.no_tenant() in every tenant policy cost about 4 µs of the server's time on
-- each one-row read (docs/performance.md). A missing tenant still fails loudly, by the cast:
-- the service's connections start with app.tenant_id set to a sentence that is no uuid
-- (postgres.Open), so a query outside InTenantTx fails with
--   invalid input syntax for type uuid: "no tenant: ..."
-- and a connection opened otherwise fails with unrecognized configuration parameter, or, once
-- a transaction has set it, with the empty string that is no uuid either.

-- +goose Up
CREATE OR REPLACE FUNCTION app.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT current_setting('app.tenant_id')::uuid
$$;
DROP FUNCTION app.no_tenant();

-- +goose Down

-- +goose StatementBegin
CREATE FUNCTION app.no_tenant() RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RAISE EXCEPTION 'no tenant in this transaction: tenant data is reached only through InTenantTx'
        USING ERRCODE = '42501';
END
$$;
-- +goose StatementEnd
GRANT EXECUTE ON FUNCTION app.no_tenant() TO app_runtime;

CREATE OR REPLACE FUNCTION app.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.tenant_id', true), ''), app.no_tenant())::uuid
$$;
