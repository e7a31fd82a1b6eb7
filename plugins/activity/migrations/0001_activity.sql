-- The activity plugin's table: the audit trail.
--
-- Created by core migration 0005 until plugins had migrations of their own:
-- a database migrated then has it already, so every statement here is IF
-- NOT EXISTS and this file only records that the plugin's schema is at 0001
-- there. A fresh database gets it here, when the plugin is first enabled.
--
-- No reference to projects: the trail must outlive a deleted project's row
-- (project.deleted is recorded after it is gone).

-- The audit trail: who did what to which entity, when. `seq` orders it
-- (insertion order, also within one transaction) and is the keyset cursor.
CREATE TABLE IF NOT EXISTS activity (
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
CREATE INDEX IF NOT EXISTS activity_project_idx ON activity (project_id, seq DESC);
