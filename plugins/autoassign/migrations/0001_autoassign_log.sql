-- The autoassign plugin's own table: one row per task it assigned, written
-- by its job handler (autoassign.record) once the assignment committed. A
-- plugin's data lives in tables of its own, made by its migrations (applied
-- and tracked per plugin when the plugin is enabled; docs/lua-api.md §11).
CREATE TABLE autoassign_log (
    task_id     uuid PRIMARY KEY,
    project_id  uuid NOT NULL,
    assignee_id uuid NOT NULL,
    rule        text NOT NULL CHECK (rule IN ('configured', 'owner')),
    -- the task's creation: it is assigned in the same transaction
    assigned_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX autoassign_log_project_idx ON autoassign_log (project_id, assigned_at);
