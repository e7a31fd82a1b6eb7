-- Comments carry their task's project, so that search reaches a project's
-- comments through an index on the project (comments_project_idx) instead of
-- probing comments_task_idx once per task of the project, a probe that costs
-- more as other projects' comments grow (issue #9: search flat as data grows).
--
-- The column is derived data, kept by the database for every writer (the API,
-- plugins, bulk SQL): a comment takes its task's project when it is inserted
-- or moved to another task, and follows its task if the task ever changes
-- project (the API does not move tasks today, API.md §4: PATCH takes any field
-- but projectId; the trigger keeps a move by SQL or a later API right).
ALTER TABLE comments ADD COLUMN project_id uuid;

UPDATE comments c SET project_id = t.project_id FROM tasks t WHERE t.id = c.task_id;

ALTER TABLE comments ALTER COLUMN project_id SET NOT NULL;

CREATE INDEX comments_project_idx ON comments (project_id);

CREATE FUNCTION comments_set_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- FOR SHARE: a concurrent move of the task waits for this comment, or
    -- this comment waits for the move and reads the new project.
    SELECT t.project_id INTO NEW.project_id FROM tasks t WHERE t.id = NEW.task_id FOR SHARE;
    IF NOT FOUND THEN
        -- The foreign key's own error, not the NOT NULL one it would become.
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "comments" violates foreign key constraint "comments_task_id_fkey"',
            DETAIL = format('Key (task_id)=(%s) is not present in table "tasks".', NEW.task_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER comments_set_project
    BEFORE INSERT OR UPDATE OF task_id, project_id ON comments
    FOR EACH ROW EXECUTE FUNCTION comments_set_project();

CREATE FUNCTION tasks_move_comments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE comments SET project_id = NEW.project_id WHERE task_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_move_comments
    AFTER UPDATE OF project_id ON tasks
    FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id)
    EXECUTE FUNCTION tasks_move_comments();
