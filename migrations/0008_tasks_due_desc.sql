-- The task list sorted by -dueDate (due_date DESC NULLS LAST, id DESC) within
-- a project: tasks_project_due_idx read backwards gives DESC NULLS FIRST, so
-- without this index every such page sorts the whole project.
CREATE INDEX tasks_project_due_desc_idx ON tasks (project_id, due_date DESC NULLS LAST, id DESC);
