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
local db = require "lib.db"
local json = require "lib.json"
local metrics = require "tk.metrics"

local PROJECT_OWNER = "SELECT owner_id FROM projects WHERE id = $1"

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
  -- Counted only if this change commits (a refused change drops it).
  db.after_commit(function()
    ASSIGNED:inc(1, { to = who })
  end)
  return { assigneeId = to }
end

return {
  name = "autoassign",
  version = "1.0.0",
  priority = 2000, -- changes the task before the others observe it
  description = "Assigns new unassigned tasks to a configured user or the project owner",
  schema = SETTINGS,
  hooks = { amend = { ["task.created"] = on_task_created } },
}
