-- Tables of the bundled plugins: plugins/webhooks (webhooks, their delivery
-- log) and plugins/activity (the audit trail). The tables exist whether or
-- not a plugin is enabled, so enabling one never needs a migration.
--
-- Neither webhooks nor activity reference projects: a project's deletion is
-- itself an event (project.deleted) that a webhook must still deliver and the
-- audit trail must still record, and the plugins' hooks run after the
-- project's row is gone. Each plugin cleans up after a deleted project itself.

CREATE TABLE webhooks (
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
CREATE INDEX webhooks_project_idx ON webhooks (project_id, created_at, id);

-- One row per delivery attempt, written by the job runner (runtime/jobs/runner.c)
-- in the transaction that records the job's outcome.
CREATE TABLE webhook_deliveries (
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
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id DESC);

-- The audit trail: who did what to which entity, when. `seq` orders it
-- (insertion order, also within one transaction) and is the keyset cursor.
CREATE TABLE activity (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq         bigserial NOT NULL UNIQUE,
    project_id  uuid NOT NULL,
    actor_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    action      text NOT NULL CHECK (action ~ '^[a-z]+\.[a-z]+$'),
    entity_type text NOT NULL CHECK (entity_type IN ('project', 'task', 'comment', 'member')),
    entity_id   uuid,
    detail      jsonb NOT NULL DEFAULT '{}',
    request_id  text,
    created_at  timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX activity_project_idx ON activity (project_id, seq DESC);
