-- Who gets which notification (API.md §6), decided from domain events. An
-- operator changes this file to change the policy; the server picks it up
-- on reload. Each rule returns a list of
--   { user = <user id>, type = <notification type>, data = {...}, email = <bool> }
-- and lib.notify stores them in the same transaction as the change, pushes
-- them on the recipient's realtime room after commit, and queues the emails.
--
-- Events and what they carry (all ids are strings; `actor` is the user who
-- made the change):
--   task.created    { actor, task = <Task>, project = <project row> }
--   task.updated    { actor, task = <Task after>, before = <Task before>, changes = {"status", ...} }
--   comment.created { actor, comment = <Comment>, task = <Task>, mentions = {ids} }
--   comment.updated { actor, comment = <Comment>, task = <Task>, added_mentions = {ids} }
local M = {}

-- Every type a rule may emit (API.md §6). lib.notify checks this list when
-- the scripts load ([a-z][a-z0-9_]*, at most 63 characters: the database
-- stores any such name) and refuses, naming this file, a notification of a
-- type not listed here; the change that caused it is still stored.
M.types = { "task_assigned", "mentioned", "task_commented", "task_status_changed" }

local function task_data(task, actor)
  return { taskId = task.id, projectId = task.projectId, title = task.title, by = actor }
end

local function is_user(v)
  return type(v) == "string"
end

M.rules = {}

M.rules["task.created"] = function(ev)
  local t = ev.task
  if is_user(t.assigneeId) and t.assigneeId ~= ev.actor then
    return { { user = t.assigneeId, type = "task_assigned", data = task_data(t, ev.actor), email = true } }
  end
  return {}
end

M.rules["task.updated"] = function(ev)
  local t, before, out = ev.task, ev.before, {}
  if is_user(t.assigneeId) and t.assigneeId ~= before.assigneeId and t.assigneeId ~= ev.actor then
    out[#out + 1] = { user = t.assigneeId, type = "task_assigned", data = task_data(t, ev.actor), email = true }
  end
  if t.status ~= before.status and t.createdBy ~= ev.actor then
    local data = task_data(t, ev.actor)
    data.from, data.to = before.status, t.status
    out[#out + 1] = { user = t.createdBy, type = "task_status_changed", data = data, email = false }
  end
  return out
end

local function comment_data(ev)
  local d = task_data(ev.task, ev.actor)
  d.commentId = ev.comment.id
  return d
end

M.rules["comment.created"] = function(ev)
  local out, told = {}, { [ev.actor] = true }
  for _, u in ipairs(ev.mentions or {}) do
    if not told[u] then
      told[u] = true
      out[#out + 1] = { user = u, type = "mentioned", data = comment_data(ev), email = true }
    end
  end
  -- The task's creator and assignee hear about comments, once, never the author.
  for _, u in ipairs({ ev.task.createdBy, ev.task.assigneeId }) do
    if is_user(u) and not told[u] then
      told[u] = true
      out[#out + 1] = { user = u, type = "task_commented", data = comment_data(ev), email = false }
    end
  end
  return out
end

M.rules["comment.updated"] = function(ev)
  local out = {}
  for _, u in ipairs(ev.added_mentions or {}) do
    if u ~= ev.actor then
      out[#out + 1] = { user = u, type = "mentioned", data = comment_data(ev), email = true }
    end
  end
  return out
end

--- The notifications for event `name`; {} for events without a rule.
function M.decide(name, ev)
  local rule = M.rules[name]
  if rule == nil then
    return {}
  end
  return rule(ev)
end

return M
