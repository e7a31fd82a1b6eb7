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

local M = {}

--- The Notification object of API.md §6.
function M.public(row)
  return {
    id = row.id,
    type = row.type,
    data = row.data or {},
    readAt = json.nullable(row.read_at),
    createdAt = row.created_at,
  }
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
  local items = policy.decide(name, ev)
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
