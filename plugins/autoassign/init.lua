-- The autoassign plugin: a task created without an assignee is assigned,
-- in the same transaction, to the user the settings name or, without one,
-- to the project's owner. The assignment is an amend hook's change
-- (lib.plugins), so it is checked like a client's PATCH (the assignee must
-- be a member of the project), stored as version 2 of the task, and the
-- 201 answer, the task:created event, the notifications and the other
-- plugins' hooks all see the task assigned. A refused assignment (the
-- configured user is not a member) is the hook's failure: logged, counted
-- in taskapi_plugin_hook_failures_total, the task stays unassigned.
--
-- Settings (PLUGINS_CONFIG, read again at every reload):
--   {"autoassign": {"assignee": "<user id>"}}   -- absent: the project's owner
-- Metric: autoassign_assignments_total{to="configured"|"owner"}, counted
-- after the commit of each assignment.
-- Data: each assignment also queues a job (autoassign.record, in the same
-- transaction: it exists only if the assignment commits) whose handler, in
-- the job runner, writes a row of the plugin's own table autoassign_log
-- (plugins/autoassign/migrations/). A job may run twice (a crash between
-- its write and its settling): the insert ignores a row already there.
local db = require "lib.db"
local json = require "lib.json"
local jobs = require "lib.jobs"
local metrics = require "tk.metrics"

local PROJECT_OWNER = "SELECT owner_id FROM projects WHERE id = $1"
local RECORD = [[
  INSERT INTO autoassign_log (task_id, project_id, assignee_id, rule, assigned_at)
  VALUES ($1, $2, $3, $4, $5::timestamptz) ON CONFLICT (task_id) DO NOTHING]]

-- Declared once per VM as the plugin loads; every worker and every
-- generation count into the same series.
local ASSIGNED = metrics.counter("autoassign_assignments_total",
  "Tasks the autoassign plugin assigned, by whom they went to.", { "to" })

local SETTINGS = {
  type = "object",
  properties = {
    assignee = { type = "string", format = "uuid",
      description = "the user new unassigned tasks go to (a member of the project); "
        .. "absent: the project's owner" },
  },
}

local function on_task_created(ev, conf)
  local task = ev.data.task
  if task.assigneeId ~= json.null then
    return nil -- the client chose
  end
  local to, who = conf.assignee, "configured"
  if to == nil then
    local p = db.one(PROJECT_OWNER, task.projectId)
    to, who = p and p.owner_id, "owner"
  end
  if to == nil then
    return nil
  end
  -- Counted and recorded only if this change commits (a refused change
  -- rolls back its savepoint, the job row with it, and drops the callback).
  db.after_commit(function()
    ASSIGNED:inc(1, { to = who })
  end)
  jobs.enqueue("autoassign.record", { taskId = task.id, projectId = task.projectId,
    assigneeId = to, rule = who, assignedAt = task.createdAt }, { max_attempts = 5 })
  return { assigneeId = to }
end

-- The job handler: runs in the job runner's VM, outside any request.
local function record(job)
  local p = job.payload
  db.query(RECORD, p.taskId, p.projectId, p.assigneeId, p.rule, p.assignedAt)
end

return {
  name = "autoassign",
  version = "1.1.0",
  priority = 2000, -- changes the task before the others observe it
  description = "Assigns new unassigned tasks to a configured user or the project owner",
  schema = SETTINGS,
  init = function()
    jobs.handle("autoassign.record", record)
  end,
  hooks = { amend = { ["task.created"] = on_task_created } },
}
