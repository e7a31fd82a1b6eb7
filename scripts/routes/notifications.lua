-- /api/v1/notifications (API.md §6): the caller's own notifications, newest
-- first, and marking them read. Notifications are created by lib.notify from
-- the policy in policies.notifications; nothing here creates any.
local route = require "lib.route"
local db = require "lib.db"
local json = require "lib.json"
local errors = require "lib.errors"
local cursor = require "lib.cursor"
local notify = require "lib.notify"
local uuid = require "lib.uuid"

local ipairs = ipairs

local r = route.group("/api/v1/notifications")

-- ---- SQL -------------------------------------------------------------------

-- One statement per filter, so the unread list can use its partial index.
-- $2/$3 the cursor (or NULL), $4 the row count.
local LIST_ALL = [[
    SELECT id, type, data, read_at, created_at
      FROM notifications
     WHERE user_id = $1
       AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
     ORDER BY created_at DESC, id DESC
     LIMIT $4]]

local LIST_UNREAD = [[
    SELECT id, type, data, read_at, created_at
      FROM notifications
     WHERE user_id = $1 AND read_at IS NULL
       AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
     ORDER BY created_at DESC, id DESC
     LIMIT $4]]

local MARK_READ = [[
  UPDATE notifications SET read_at = coalesce(read_at, now())
   WHERE id = $1 AND user_id = $2
  RETURNING id, type, data, read_at, created_at]]

local MARK_ALL_READ = "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL"

-- ---- schemas ---------------------------------------------------------------

local S = {
  list = { type = "object", properties = {
    unread = { type = "boolean", description = "true: only notifications not read yet" },
    limit = cursor.LIMIT,
    cursor = cursor.CURSOR,
  } },
}

-- ---- helpers ---------------------------------------------------------------

-- ---- routes ----------------------------------------------------------------

r:get("", { query = S.list, tags = { "notifications" },
  summary = "The caller's notifications, newest first" }, function(req)
  local q = req.query
  local after_t, after_id = cursor.decode_time_id(q.cursor)
  local rows = db.query(q.unread and LIST_UNREAD or LIST_ALL, req.user.id, after_t, after_id, q.limit + 1)
  local page, next_cursor = cursor.page(rows, q.limit, function(row)
    return { row.created_at, row.id }
  end)
  local data = json.array({})
  for i, row in ipairs(page) do
    data[i] = notify.public(row)
  end
  return 200, { data = data, meta = { limit = q.limit, nextCursor = next_cursor } }
end)

-- Declared before /:id/read; the two never compete (different lengths).
r:post("/read-all", { status = 204, tags = { "notifications" },
  summary = "Mark all of the caller's notifications read" }, function(req)
  db.tx(function()
    db.query(MARK_ALL_READ, req.user.id)
  end)
  return 204
end)

r:post("/:id/read", { tags = { "notifications" },
  summary = "Mark one of the caller's notifications read" }, function(req)
  if not uuid.valid(req.params.id) then
    errors.not_found("notification not found")
  end
  local row = db.tx(function()
    return db.one(MARK_READ, req.params.id, req.user.id)
  end)
  if not row then
    errors.not_found("notification not found") -- someone else's is not found either
  end
  return 200, { data = notify.public(row) }
end)

return r
