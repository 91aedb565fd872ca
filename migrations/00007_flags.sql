-- Feature flags: the flags (platform data: no tenant owns one), per-tenant overrides (tenant
-- data, under row-level security), the audit trail, and the configuration version that every
-- replica's snapshot follows. See docs/flags.md.

-- +goose Up

CREATE TABLE flags (
    key             text PRIMARY KEY CHECK (key ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    description     text NOT NULL DEFAULT '',
    type            text NOT NULL CHECK (type IN ('boolean', 'string', 'number', 'object')),
    variants        jsonb NOT NULL CHECK (jsonb_typeof(variants) = 'object'),
    default_variant text NOT NULL CHECK (variants ? default_variant),
    enabled         boolean NOT NULL,
    rules           jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(rules) = 'array'),
    salt            text NOT NULL CHECK (salt ~ '^[A-Za-z0-9._-]{1,128}$'),
    version         bigint NOT NULL,    -- the configuration version of the flag's last change
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON flags TO app_runtime;

-- The version of the whole flag configuration. Every change raises it by one in the
-- transaction that makes the change, so a replica learns from one number whether its snapshot
-- is current. Changes lock its single row first, which orders them: versions follow commit
-- order, and the snapshot read at version N holds exactly the changes up to N.
CREATE TABLE flag_config (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL CHECK (version >= 0)
);
GRANT SELECT, UPDATE ON flag_config TO app_runtime;

-- Overrides serve one tenant a variant before any rule. They are the tenant's data, so the
-- table follows the tenancy rule. It has no foreign key to flags (a key without tenant_id
-- would break the rule): the functions below check the flag and its variant instead, and
-- deleting a flag deletes its overrides in the same transaction. The runtime role has no
-- privilege on the table at all: it reaches overrides only through those functions.
CREATE TABLE flag_overrides (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    flag_key   text NOT NULL,
    variant    text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, flag_key)
);
SELECT app.isolate_by_tenant('flag_overrides');
CREATE INDEX flag_overrides_flag_idx ON flag_overrides (flag_key, tenant_id);

-- The audit trail: one row per change that changed something, written in the change's
-- transaction. Append-only for the runtime role. Overrides' rows carry their tenant inside
-- before/after; only operators read this table.
CREATE TABLE flag_audit (
    id         uuid PRIMARY KEY,    -- v7: id order is time order
    flag_key   text NOT NULL,
    action     text NOT NULL CHECK (action IN
                   ('flag.created', 'flag.updated', 'flag.deleted', 'override.set', 'override.deleted')),
    actor      text NOT NULL,
    request_id text,
    version    bigint NOT NULL,
    before     jsonb,
    after      jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX flag_audit_flag_idx ON flag_audit (flag_key, id);
GRANT SELECT, INSERT ON flag_audit TO app_runtime;

-- Cross-tenant paths for overrides. Each is SECURITY DEFINER (it runs as the owner, which
-- bypasses RLS), is executable by the runtime role only, and touches only the rows of the flag
-- (and tenant) it is given. Operators call them; tenants' requests never do: a tenant's
-- overrides reach it only as evaluations, through the snapshot.

-- The snapshot load (p_flag_key NULL: every flag) and the operator's list of one flag's
-- overrides: the flag, the tenant and the variant, nothing else.
-- +goose StatementBegin
CREATE FUNCTION app.flag_overrides(p_flag_key text)
RETURNS TABLE (flag_key text, tenant_id uuid, variant text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT o.flag_key, o.tenant_id, o.variant FROM public.flag_overrides o
     WHERE p_flag_key IS NULL OR o.flag_key = p_flag_key
$$;
-- +goose StatementEnd

-- Sets a tenant's override of a flag and answers the variant it replaced (NULL if none). The
-- flag and the variant must exist; an unknown tenant fails on the foreign key.
-- +goose StatementBegin
CREATE FUNCTION app.set_flag_override(p_flag_key text, p_tenant_id uuid, p_variant text, p_at timestamptz)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    previous text;
BEGIN
    IF NOT EXISTS (SELECT FROM public.flags f WHERE f.key = p_flag_key AND f.variants ? p_variant) THEN
        RAISE EXCEPTION 'flag % has no variant %', p_flag_key, p_variant USING ERRCODE = 'P0002';
    END IF;
    SELECT o.variant INTO previous FROM public.flag_overrides o
     WHERE o.tenant_id = p_tenant_id AND o.flag_key = p_flag_key
       FOR UPDATE;
    INSERT INTO public.flag_overrides AS o (tenant_id, flag_key, variant, created_at, updated_at)
    VALUES (p_tenant_id, p_flag_key, p_variant, p_at, p_at)
    ON CONFLICT (tenant_id, flag_key) DO UPDATE
       SET variant = excluded.variant, updated_at = excluded.updated_at
     WHERE o.variant <> excluded.variant;
    RETURN previous;
END
$$;
-- +goose StatementEnd

-- Deletes one tenant's override of a flag, or every tenant's (p_tenant_id NULL, when the flag
-- itself is deleted), and answers what it deleted.
-- +goose StatementBegin
CREATE FUNCTION app.delete_flag_overrides(p_flag_key text, p_tenant_id uuid)
RETURNS TABLE (tenant_id uuid, variant text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DELETE FROM public.flag_overrides o
     WHERE o.flag_key = p_flag_key AND (p_tenant_id IS NULL OR o.tenant_id = p_tenant_id)
    RETURNING o.tenant_id, o.variant
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION app.flag_overrides(text), app.set_flag_override(text, uuid, text, timestamptz),
    app.delete_flag_overrides(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.flag_overrides(text), app.set_flag_override(text, uuid, text, timestamptz),
    app.delete_flag_overrides(text, uuid) TO app_runtime;

-- The one flag the service itself reads (tenant.Projects, see docs/flags.md): how many
-- projects a tenant may have, 0 meaning no limit. Free tenants get 3 once an operator turns
-- it on; it ships off, so nothing changes until then.
INSERT INTO flags (key, description, type, variants, default_variant, enabled, rules, salt, version, created_at, updated_at)
VALUES ('project-limit',
        'How many projects a tenant may create; 0 means no limit.',
        'number',
        '{"free": 3, "unlimited": 0}',
        'unlimited',
        false,
        '[{"conditions": [{"attribute": "plan", "operator": "in", "values": ["free"]}], "variant": "free"}]',
        'project-limit',
        1, now(), now());
INSERT INTO flag_config (version) VALUES (1);
INSERT INTO flag_audit (id, flag_key, action, actor, version, after, created_at)
SELECT '00000000-0000-7000-8000-000000000001', key, 'flag.created', 'migration:00002_flags', 1,
       jsonb_build_object('key', key, 'description', description, 'type', type, 'variants', variants,
                          'default_variant', default_variant, 'enabled', enabled, 'rules', rules, 'salt', salt),
       created_at
  FROM flags WHERE key = 'project-limit';

-- +goose Down
DROP FUNCTION app.delete_flag_overrides(text, uuid);
DROP FUNCTION app.set_flag_override(text, uuid, text, timestamptz);
DROP FUNCTION app.flag_overrides(text);
DROP TABLE flag_audit, flag_overrides, flag_config, flags;
