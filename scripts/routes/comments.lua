-- /api/v1 comments (API.md §5): a task's comments oldest first, writing,
-- editing and deleting them. Mentions are resolved in lib.comments; the
-- notification policy (policies.notifications) decides who hears about a
-- comment, inside the same transaction as the change.
local route = require "lib.route"
local db = require "lib.db"
local json = require "lib.json"
local errors = require "lib.errors"
local events = require "lib.events"
local notify = require "lib.notify"
local cursor = require "lib.cursor"
local projects = require "lib.projects"
local comments = require "lib.comments"
local uuid = require "lib.uuid"

local ipairs = ipairs

local r = route.group("/api/v1")

-- ---- schemas ---------------------------------------------------------------

local content = { type = "string", trim = true, minLength = 1, maxLength = 10000,
  description = "1..10000 characters after trimming; `@<email>` of a project member mentions them" }

local S = {
  create = { type = "object", required = { "content" }, properties = {
    content = content,
    mentions = { type = "array", maxItems = 100, items = { type = "string", format = "uuid" },
      description = "user ids to mention; users who may not read the project are dropped" },
  } },
  update = { type = "object", properties = { content = content } },
  list = { type = "object", properties = { limit = cursor.LIMIT, cursor = cursor.CURSOR } },
}

-- ---- helpers ---------------------------------------------------------------

local function comment_not_found()
  errors.not_found("comment not found")
end

local function task_not_found()
  errors.not_found("task not found")
end

-- ---- routes ----------------------------------------------------------------

r:get("/tasks/:id/comments", { query = S.list, tags = { "comments" },
  summary = "A task's comments, oldest first" }, function(req)
  local task = comments.load_task(req.user, req.params.id)
  if not task then
    task_not_found()
  end
  projects.authorize(req.user, "comment.read", comments.project(task))
  local q = req.query
  local after_t, after_id = cursor.decode_time_id(q.cursor)
  local rows = db.query(comments.LIST, task.t_id, after_t, after_id, q.limit + 1)
  local page, next_cursor = cursor.page(rows, q.limit, function(row)
    return { row.created_at, row.id }
  end)
  local data = json.array({})
  for i, row in ipairs(page) do
    data[i] = comments.public(row)
  end
  return 200, { data = data, meta = { limit = q.limit, nextCursor = next_cursor } }
end)

r:post("/tasks/:id/comments", { body = S.create, status = 201, tags = { "comments" },
  summary = "Comment on a task; mentioned users and the task's people are notified" }, function(req)
  if not uuid.valid(req.params.id) then
    task_not_found()
  end
  local b = req.body
  local comment = db.tx(function()
    local task = comments.load_task(req.user, req.params.id, true)
    if not task then
      task_not_found()
    end
    projects.authorize(req.user, "comment.create", comments.project(task))
    local mentions = comments.resolve(task.t_project_id, b.mentions, b.content)
    local row = db.one(comments.INSERT, task.t_id, req.user.id, b.content, mentions)
    local c = comments.public(row)
    events.publish("project:" .. task.t_project_id, "comment:created", { comment = c, taskId = task.t_id })
    notify.emit("comment.created", { actor = req.user.id, comment = c, task = comments.task(task),
      mentions = mentions })
    return c
  end)
  return 201, { data = comment }
end)

r:patch("/comments/:id", { body = S.update, tags = { "comments" },
  summary = "Edit a comment (its author, or a global admin); newly mentioned users are notified" }, function(req)
  if not uuid.valid(req.params.id) then
    comment_not_found()
  end
  local b = req.body
  local comment = db.tx(function()
    local old = comments.load(req.user, req.params.id, b.content ~= nil)
    if not old then
      comment_not_found()
    end
    projects.authorize(req.user, "comment.update", comments.project(old), { user_id = old.user_id })
    if b.content == nil then
      return comments.public(old) -- nothing named, nothing changed
    end
    local mentions, added = comments.resolve_edit(old, b.content)
    local row = db.one(comments.UPDATE, old.id, b.content, mentions)
    local c = comments.public(row)
    events.publish("project:" .. old.t_project_id, "comment:updated", { comment = c, taskId = old.task_id })
    notify.emit("comment.updated", { actor = req.user.id, comment = c, task = comments.task(old),
      added_mentions = added })
    return c
  end)
  return 200, { data = comment }
end)

r:delete("/comments/:id", { status = 204, tags = { "comments" },
  summary = "Delete a comment (its author, or a project admin or owner)" }, function(req)
  if not uuid.valid(req.params.id) then
    comment_not_found()
  end
  db.tx(function()
    local old = comments.load(req.user, req.params.id, true)
    if not old then
      comment_not_found()
    end
    projects.authorize(req.user, "comment.delete", comments.project(old), { user_id = old.user_id })
    db.query(comments.DELETE, old.id)
    events.publish("project:" .. old.t_project_id, "comment:deleted", { commentId = old.id, taskId = old.task_id })
  end)
  return 204
end)

return r
