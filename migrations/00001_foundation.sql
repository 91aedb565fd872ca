-- Foundation: the runtime role, the tenancy function, tenants, users, credentials,
-- projects, the outbox and the plans catalog.

-- +goose Up

-- Roles are cluster-wide and test databases migrate in parallel, so the role is created
-- idempotently under a lock, and never dropped by a down migration.
-- +goose StatementBegin
DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('saasbase:roles'));
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_runtime') THEN
        CREATE ROLE app_runtime LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    ALTER ROLE app_runtime SET statement_timeout = '10s';
    ALTER ROLE app_runtime SET idle_in_transaction_session_timeout = '60s';
END
$$;
-- +goose StatementEnd

CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO app_runtime;

-- The tenant of the current transaction, as InTenantTx set it. Failing loudly when it is
-- unset turns a forgotten InTenantTx into an error instead of an empty result.
-- +goose StatementBegin
CREATE FUNCTION app.current_tenant_id() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v text := current_setting('app.tenant_id', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        RAISE EXCEPTION 'no tenant in this transaction: tenant data is reached only through InTenantTx'
            USING ERRCODE = '42501';
    END IF;
    RETURN v::uuid;
END
$$;
-- +goose StatementEnd

-- isolate_by_tenant puts a tenant table under the tenancy rule: row-level security enabled
-- and forced (so even its owner's sessions obey it), with the one policy every tenant table
-- has. For migrations only: the runtime role cannot call it.
-- +goose StatementBegin
CREATE FUNCTION app.isolate_by_tenant(t regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %s'
                   ' USING (tenant_id = app.current_tenant_id()) WITH CHECK (tenant_id = app.current_tenant_id())', t);
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.isolate_by_tenant(regclass) FROM PUBLIC;

CREATE TABLE plans (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    currency    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    base_fee    numeric(20, 6) NOT NULL DEFAULT 0 CHECK (base_fee >= 0),
    rate_limit  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON plans TO app_runtime;

INSERT INTO plans (code, name, currency, base_fee, rate_limit) VALUES
    ('free', 'Free', 'usd', 0, '{"requests_per_second": 10, "burst": 20, "max_concurrent": 10}'),
    ('pro', 'Pro', 'usd', 49, '{"requests_per_second": 100, "burst": 200, "max_concurrent": 50}'),
    ('enterprise', 'Enterprise', 'usd', 499, '{"requests_per_second": 1000, "burst": 2000, "max_concurrent": 200}');

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    slug        text NOT NULL CONSTRAINT tenants_slug_key UNIQUE,
    plan_code   text NOT NULL REFERENCES plans (code),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    timezone    text NOT NULL DEFAULT 'UTC',
    rate_limit  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = app.current_tenant_id()) WITH CHECK (id = app.current_tenant_id());
GRANT SELECT, INSERT, UPDATE ON tenants TO app_runtime;

CREATE TABLE users (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_email_key UNIQUE (tenant_id, email)
);

CREATE TABLE refresh_tokens (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (tenant_id, user_id);

CREATE TABLE api_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    secret_hash  bytea NOT NULL,
    rate_limit   jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Keys are presented without their tenant, so the lookup goes by id alone.
CREATE INDEX api_keys_id_idx ON api_keys (id);

CREATE TABLE projects (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- The transactional outbox, which is also the tenant's event log. txid records the writing
-- transaction so a relay can publish in commit order, not insert order. Platform events
-- use the all-zero tenant id, which no tenant has.
CREATE TABLE outbox (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    data         jsonb NOT NULL,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_type_idx ON outbox (tenant_id, type, id);
CREATE INDEX outbox_unpublished_idx ON outbox (txid, id) WHERE published_at IS NULL;

SELECT app.isolate_by_tenant('users'),
       app.isolate_by_tenant('refresh_tokens'),
       app.isolate_by_tenant('api_keys'),
       app.isolate_by_tenant('projects'),
       app.isolate_by_tenant('outbox');
GRANT SELECT, INSERT, UPDATE, DELETE ON users, refresh_tokens, api_keys, projects, outbox TO app_runtime;

-- Cross-tenant paths. Each is SECURITY DEFINER (it runs as the owner, which bypasses RLS),
-- so each returns only the few columns its caller needs, for the one row asked for.

-- Login by tenant slug: the tenant's id and status, nothing else.
-- +goose StatementBegin
CREATE FUNCTION app.tenant_by_slug(p_slug text)
RETURNS TABLE (tenant_id uuid, status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id, status FROM public.tenants WHERE slug = p_slug
$$;
-- +goose StatementEnd

-- API-key authentication: the key's tenant, role, hash and limit, for a key not revoked.
-- last_used_at is written at most once a minute so that authentication stays a read.
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

-- The operator's tenant list, in id order from a cursor.
-- +goose StatementBegin
CREATE FUNCTION app.platform_tenants(p_after uuid, p_limit int)
RETURNS SETOF public.tenants
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT * FROM public.tenants
     WHERE p_after IS NULL OR id > p_after
     ORDER BY id LIMIT least(p_limit, 201)
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.tenant_by_slug(text), app.api_key_for_auth(uuid),
    app.platform_tenants(uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.current_tenant_id(), app.tenant_by_slug(text),
    app.api_key_for_auth(uuid), app.platform_tenants(uuid, int) TO app_runtime;

-- +goose Down
-- The schema first: its functions depend on the tables' row types, the policies on them.
DROP SCHEMA app CASCADE;
DROP TABLE outbox, projects, api_keys, refresh_tokens, users, tenants, plans;
