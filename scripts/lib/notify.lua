-- Applies the notification policy: for a domain event, asks
-- policies.notifications who gets what, stores the notifications in the
-- caller's transaction, pushes `notification:created` on each recipient's
-- room after commit, and queues an email where the policy says so.
local db = require "lib.db"
local json = require "lib.json"
local events = require "lib.events"
local mail = require "lib.mail"
local policy = require "policies.notifications"
local runtime = require "tk.runtime"
local log = require "tk.log"

local M = {}

local POLICY = "policies/notifications.lua"

-- The policy's declared types, checked once when the scripts load: a bad
-- declaration fails the generation (taskapi check, reload), naming the file.
local TYPES = {}
do
  local declared = policy.types
  if type(declared) ~= "table" or #declared == 0 then
    error(POLICY .. ": M.types must list the notification types the rules emit", 0)
  end
  for i, t in ipairs(declared) do
    if type(t) ~= "string" or not t:find("^[a-z][a-z0-9_]*$") or #t > 63 then
      error(("%s: M.types[%d] must be a name of [a-z0-9_] starting with a letter, at most 63 "
        .. "characters (got %s)"):format(POLICY, i, tostring(t)), 0)
    end
    if TYPES[t] then
      error(("%s: M.types lists '%s' twice"):format(POLICY, t), 0)
    end
    TYPES[t] = true
  end
end

-- The policy's notifications for event `name`, each checked. A rule that
-- raises, or an item that is malformed or of an undeclared type, is logged
-- with the policy's file (and line, for a raise) and left out: a broken
-- notification rule must not fail, nor be blamed on, the change it reports.
local function decide(name, ev)
  local ok, items = pcall(policy.decide, name, ev)
  if not ok then
    log.error("%s: the rule for %s failed (its notifications are skipped): %s", POLICY, name,
      tostring(items))
    return {}
  end
  if type(items) ~= "table" then
    log.error("%s: the rule for %s returned %s, not a list", POLICY, name, type(items))
    return {}
  end
  local good = {}
  for i, it in ipairs(items) do
    if type(it) ~= "table" or type(it.user) ~= "string" or type(it.data) ~= "table" then
      log.error("%s: the rule for %s returned a malformed item %d (needs user, type, data)",
        POLICY, name, i)
    elseif not TYPES[it.type] then
      log.error("%s: the rule for %s emitted type '%s', which M.types does not declare (skipped)",
        POLICY, name, tostring(it.type))
    else
      good[#good + 1] = it
    end
  end
  return good
end

local SHAPE = json.shape({ "id", "type", "data", "readAt", "createdAt" })

--- The Notification object of API.md §6.
function M.public(row)
  return setmetatable({
    id = row.id,
    type = row.type,
    data = row.data or {},
    readAt = json.nullable(row.read_at),
    createdAt = row.created_at,
  }, SHAPE)
end

local SUBJECTS = {
  task_assigned = "You were assigned a task",
  mentioned = "You were mentioned in a comment",
  task_commented = "New comment on a task",
  task_status_changed = "A task you created changed status",
}

--- Runs the policy for event `name` and stores its notifications. Must be
--- called inside db.tx. Returns the stored rows.
function M.emit(name, ev)
  local items = decide(name, ev)
  if #items == 0 then
    return {}
  end
  local ids, types, datas = {}, {}, {}
  for i, it in ipairs(items) do
    ids[i], types[i], datas[i] = it.user, it.type, json.encode(it.data)
  end
  local rows = db.query([[
    INSERT INTO notifications (user_id, type, data)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[])
    RETURNING id, user_id, type, data, read_at, created_at]], ids, types, datas)
  local base = runtime.config().app_base_url
  for i, row in ipairs(rows) do
    events.publish("user:" .. row.user_id, "notification:created", { notification = M.public(row) })
    if items[i].email then
      local u = db.one("SELECT email, name FROM users WHERE id = $1", row.user_id)
      if u then
        local d = items[i].data
        local link = base .. "/api/v1/tasks/" .. tostring(d.taskId)
        mail.notice(u, row.type, SUBJECTS[row.type] or "Notification", tostring(d.title or ""), link)
      end
    end
  end
  return rows
end

return M
