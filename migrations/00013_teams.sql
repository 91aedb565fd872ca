-- Teams: invitations, password resets, email verification, and the mail that carries their
-- links. A token is random; the database keeps its SHA-256 for checking. The mail that
-- carries it keeps it sealed (AES-GCM under WEBHOOK_SECRET_KEY, which the database never
-- sees) until it is sent, then forgets it. Mail is not a domain event: it has a table of its
-- own that the event log, Kafka, webhooks and dead letters never read. See docs/teams.md.

-- +goose Up

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- An invitation to join a tenant with a role. Pending while neither accepted nor revoked
-- (and, on reading, not expired); one pending invitation per email and tenant. invited_by is
-- the user the inviter acted for: an invitation is good only while that user could still
-- grant its role.
CREATE TABLE invitations (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    email            text NOT NULL,
    role             text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash       bytea NOT NULL,
    invited_by       uuid NOT NULL,
    expires_at       timestamptz NOT NULL,
    accepted_at      timestamptz,
    accepted_user_id uuid,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
CREATE UNIQUE INDEX invitations_pending_email_key ON invitations (tenant_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- Single-use tokens of a user: password resets (1 hour) and email verifications (7 days).
CREATE TABLE user_tokens (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    user_id    uuid NOT NULL,
    purpose    text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    email      text NOT NULL,          -- the address the token was mailed to
    token_hash bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX user_tokens_user_idx ON user_tokens (tenant_id, user_id, purpose, created_at);

-- Mail to send, written in the transaction of the change that asks for it. data holds what
-- the template shows besides the link (never a secret); token_sealed is the link's token,
-- sealed and bound to this row, and is wiped once the mail is sent or given up on.
CREATE TABLE mail_outbox (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid NOT NULL,
    template        text NOT NULL,
    recipient       text NOT NULL,
    data            jsonb NOT NULL,
    token_sealed    bytea,
    status          text NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK (status = 'pending' OR token_sealed IS NULL)
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE status = 'pending';

SELECT app.isolate_by_tenant('invitations'),
       app.isolate_by_tenant('user_tokens'),
       app.isolate_by_tenant('mail_outbox');
GRANT SELECT, INSERT, UPDATE, DELETE ON invitations, user_tokens, mail_outbox TO app_runtime;

-- The mailer's claim: due mail of every tenant, leased by pushing its next attempt out by
-- p_lease, so that a crashed mailer's claim lapses and another sends it (with the same
-- Message-ID). SKIP LOCKED lets replicas claim side by side. Ids only.
-- +goose StatementBegin
CREATE FUNCTION app.claim_mail(p_now timestamptz, p_lease interval, p_limit int)
RETURNS TABLE (tenant_id uuid, mail_id uuid)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH due AS (
        SELECT m.tenant_id, m.id FROM public.mail_outbox m
         WHERE m.status = 'pending' AND m.next_attempt_at <= p_now
         ORDER BY m.next_attempt_at
         LIMIT least(p_limit, 1000)
           FOR UPDATE SKIP LOCKED
    )
    UPDATE public.mail_outbox m SET next_attempt_at = p_now + p_lease
      FROM due WHERE m.tenant_id = due.tenant_id AND m.id = due.id
    RETURNING m.tenant_id, m.id
$$;
-- +goose StatementEnd
CREATE INDEX mail_outbox_finished_idx ON mail_outbox (created_at) WHERE status <> 'pending';
CREATE INDEX user_tokens_expires_idx ON user_tokens (expires_at);

-- The reaper: mail sent or given up on, and user tokens expired, before p_before, a batch at
-- a time. Pending mail is never deleted, whatever its age. Answers how many rows went.
-- +goose StatementBegin
CREATE FUNCTION app.reap_mail(p_before timestamptz, p_limit int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH mail AS (
        SELECT m.tenant_id, m.id FROM public.mail_outbox m
         WHERE m.status <> 'pending' AND m.created_at < p_before
         ORDER BY m.created_at LIMIT least(p_limit, 10000)
           FOR UPDATE SKIP LOCKED
    ), mail_gone AS (
        DELETE FROM public.mail_outbox m USING mail WHERE m.tenant_id = mail.tenant_id AND m.id = mail.id
        RETURNING 1
    ), tokens AS (
        SELECT t.tenant_id, t.id FROM public.user_tokens t
         WHERE t.expires_at < p_before
         ORDER BY t.expires_at LIMIT least(p_limit, 10000)
           FOR UPDATE SKIP LOCKED
    ), tokens_gone AS (
        DELETE FROM public.user_tokens t USING tokens WHERE t.tenant_id = tokens.tenant_id AND t.id = tokens.id
        RETURNING 1
    )
    SELECT ((SELECT count(*) FROM mail_gone) + (SELECT count(*) FROM tokens_gone))::int
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION app.claim_mail(timestamptz, interval, int), app.reap_mail(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.claim_mail(timestamptz, interval, int), app.reap_mail(timestamptz, int) TO app_runtime;

-- +goose Down
DROP FUNCTION app.reap_mail(timestamptz, int);
DROP FUNCTION app.claim_mail(timestamptz, interval, int);
DROP TABLE mail_outbox, user_tokens, invitations;
ALTER TABLE users DROP COLUMN email_verified_at;
