-- The webhooks plugin's tables: the webhooks and their delivery log.
--
-- These tables were created by core migration 0005 until plugins had
-- migrations of their own: a database migrated then has them already, so
-- every statement here is IF NOT EXISTS and this file only records that the
-- plugin's schema is at 0001 there. A fresh database gets them here, when
-- the plugin is first enabled.
--
-- No reference to projects: a project's deletion is itself an event
-- (project.deleted) that a webhook must still deliver, and the plugin's hook
-- runs after the project's row is gone; the plugin marks its webhooks itself.

CREATE TABLE IF NOT EXISTS webhooks (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id           uuid NOT NULL,
    url                  text NOT NULL CHECK (url ~ '^https?://' AND char_length(url) <= 2048),
    -- HMAC-SHA256 key of the X-Taskapi-Signature header; shown once, on create.
    secret               text NOT NULL CHECK (char_length(secret) BETWEEN 16 AND 256),
    -- Domain event names this webhook wants; NULL means every event.
    events               text[] CHECK (events IS NULL OR cardinality(events) >= 1),
    -- false: paused by an admin, or disabled after repeated failures
    -- (then disabled_at says when). Only active webhooks get new deliveries.
    active               boolean NOT NULL DEFAULT true,
    consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    disabled_at          timestamptz(3),
    last_delivery_at     timestamptz(3),
    last_status          integer,
    -- Set when the project is deleted: its pending deliveries (project.deleted
    -- included) still go out; the API no longer shows the webhook.
    project_deleted_at   timestamptz(3),
    created_by           uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at           timestamptz(3) NOT NULL DEFAULT now(),
    updated_at           timestamptz(3) NOT NULL DEFAULT now(),
    CONSTRAINT webhooks_disabled_inactive CHECK (disabled_at IS NULL OR NOT active)
);
CREATE INDEX IF NOT EXISTS webhooks_project_idx ON webhooks (project_id, created_at, id);

-- One row per delivery attempt, written by the plugin's job handler
-- (plugins/webhooks/delivery.lua) after the attempt.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id          bigserial PRIMARY KEY,
    webhook_id  uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    job_id      bigint NOT NULL,
    event       text NOT NULL,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    status_code integer,          -- NULL when no HTTP answer came (timeout, refused)
    error       text,             -- NULL on success
    duration_ms integer NOT NULL CHECK (duration_ms >= 0),
    success     boolean NOT NULL,
    created_at  timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id DESC);
