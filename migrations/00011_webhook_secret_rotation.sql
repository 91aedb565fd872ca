-- Webhook secret rotation (Standard Webhooks): after a rotation, deliveries are signed with
-- the new secret and, for a while, the previous one too, so that a receiver can switch over
-- without dropping a message. The previous secret is sealed like the current one (bound to the
-- same row) and kept with the moment it stops being used. The table already isolates tenants.

-- +goose Up

ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret_sealed     bytea,
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD CONSTRAINT webhook_endpoints_previous_secret_check
        CHECK ((previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL));

-- +goose Down

ALTER TABLE webhook_endpoints
    DROP CONSTRAINT webhook_endpoints_previous_secret_check,
    DROP COLUMN previous_secret_expires_at,
    DROP COLUMN previous_secret_sealed;
