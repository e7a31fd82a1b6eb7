-- Tasks as routes see them (API.md §4): the Task object, the columns every
-- task query selects, and loading a task together with the caller's access
-- to its project in one query. Permission answers come from
-- policies.permissions; this module only turns them into 404 / 403 / 409.
--
--   local tasks = require "lib.tasks"
--   local row = tasks.get(req.user, req.params.id, "comment.create", "share")
--   ... tasks.public(row) ...
local db = require "lib.db"
local errors = require "lib.errors"
local json = require "lib.json"
local permissions = require "policies.permissions"
local uuid = require "lib.uuid"

local type, ipairs, error, setmetatable = type, ipairs, error, setmetatable

local M = {}

--- The task columns, qualified with the alias `t`. Use it in SELECT lists
--- and in `INSERT INTO tasks AS t ... RETURNING` / `UPDATE tasks AS t ...
--- RETURNING`, so every query yields rows M.public understands.
M.COLUMNS = [[
  t.id, t.project_id, t.title, t.description, t.status, t.priority, t.priority_rank,
  t.assignee_id, t.created_by, t.due_date, t.completed_at, t.tags, t.version,
  t.created_at, t.updated_at]]

--- A task with the caller's access to its project: $1 = task id, $2 = the
--- caller's user id. Adds project_visibility, project_status,
--- project_owner_id and my_role (nil for a non-member) to the task columns.
M.SELECT = [[
  SELECT ]] .. M.COLUMNS .. [[,
         p.visibility AS project_visibility, p.status AS project_status,
         p.owner_id AS project_owner_id, m.role AS my_role
    FROM tasks t
    JOIN projects p ON p.id = t.project_id
    LEFT JOIN project_members m ON m.project_id = t.project_id AND m.user_id = $2
   WHERE t.id = $1]]

-- One statement per lock mode (see M.load).
local LOAD = {
  none = M.SELECT,
  share = M.SELECT .. " FOR SHARE OF p",
  update = M.SELECT .. " FOR UPDATE OF t FOR SHARE OF p",
}

-- The Task object of API.md §4, in its field order: column, field, type
-- (tk.db projection types), nullable.
local FIELDS = {
  { "id", "id", "string" },
  { "project_id", "projectId", "string" },
  { "title", "title", "string" },
  { "description", "description", "string" },
  { "status", "status", "string" },
  { "priority", "priority", "string" },
  { "assignee_id", "assigneeId", "string", nullable = true },
  { "created_by", "createdBy", "string" },
  { "due_date", "dueDate", "timestamp", nullable = true },
  { "completed_at", "completedAt", "timestamp", nullable = true },
  { "tags", "tags", "strings" },
  { "version", "version", "integer" },
  { "created_at", "createdAt", "timestamp" },
  { "updated_at", "updatedAt", "timestamp" },
}

local KEYS = {}
for i, f in ipairs(FIELDS) do
  KEYS[i] = f[2]
end

--- The key order of the Task object (json.shape).
M.SHAPE = json.shape(KEYS)

-- The columns of a row from M.load that M.authorize reads: the project's
-- access (M.project_of) and what policies.permissions asks of a task
-- (task.delete: created_by).
local ACCESS = { "project_id", "my_role", "project_visibility", "project_status",
  "project_owner_id", "created_by" }

--- The Task object written by C straight from a row with M.COLUMNS
--- (db.query_json / db.one_json): byte for byte what json.encode makes of
--- M.public(row). The rows it gives back to Lua hold what a page of tasks
--- needs of them (lib.task_list, routes/tasks.lua): the access columns
--- (on the first row) and every sort key and the id (on the last, for the
--- cursor); the rest of the row stays in C.
M.PROJECTION = db.projection(FIELDS, { "id", "created_at", "updated_at", "priority_rank",
  "due_date", table.unpack(ACCESS) })

-- The same object for M.get_json: its row holds the access columns and the
-- version (the ETag).
local PROJECTION_ONE = db.projection(FIELDS, { "id", "version", table.unpack(ACCESS) })

--- The Task object of API.md §4 for a row with M.COLUMNS.
function M.public(row)
  return setmetatable({
    id = row.id,
    projectId = row.project_id,
    title = row.title,
    description = row.description,
    status = row.status,
    priority = row.priority,
    assigneeId = json.nullable(row.assignee_id),
    createdBy = row.created_by,
    dueDate = json.nullable(row.due_date),
    completedAt = json.nullable(row.completed_at),
    tags = json.array(row.tags or {}),
    version = row.version,
    createdAt = row.created_at,
    updatedAt = row.updated_at,
  }, M.SHAPE)
end

-- Fields of the Task object a change can touch: directly, or (completedAt)
-- through status.
local CHANGE_FIELDS = { "title", "description", "status", "priority", "assigneeId", "dueDate",
  "completedAt", "tags" }

local function same(a, b)
  if type(a) == "table" and type(b) == "table" then
    if #a ~= #b then
      return false
    end
    for i = 1, #a do
      if a[i] ~= b[i] then
        return false
      end
    end
    return true
  end
  return a == b
end

--- The `changes` list of a task:updated event: the names of the Task
--- fields whose value differs between `before` and `after` (two Task
--- objects from M.public), in a fixed order, as a JSON array. version and
--- updatedAt are not listed (they move with every change).
function M.changes(before, after)
  local out = json.array()
  for _, f in ipairs(CHANGE_FIELDS) do
    if not same(before[f], after[f]) then
      out[#out + 1] = f
    end
  end
  return out
end

--- The project fields of a row from M.load, in the shape
--- policies.permissions.can expects ({id, my_role, visibility, status,
--- owner_id}).
function M.project_of(row)
  return {
    id = row.project_id,
    my_role = row.my_role,
    visibility = row.project_visibility,
    status = row.project_status,
    owner_id = row.project_owner_id,
  }
end

--- Loads task `id` with `user`'s access to its project (one query). Returns
--- nil when there is no such task or `id` is not a UUID; never raises for
--- bad input. `lock` (inside db.tx only):
---   nil       no lock
---   "share"   FOR SHARE OF the project: it cannot be archived, deleted or
---             changed until the transaction ends
---   "update"  "share" plus FOR UPDATE OF the task row
function M.load(user, id, lock)
  if not uuid.valid(id) then
    return nil
  end
  if LOAD[lock or "none"] == nil then
    error("tasks.load: lock must be nil, 'share' or 'update'", 2)
  end
  return db.one(LOAD[lock or "none"], id, user.id)
end

--- Raises unless `user` may do `action` (a policies.permissions action) on
--- task `row` (from M.load, or nil for a missing one): 404 when the task is
--- missing or its project unreadable, 403 when the role does not allow it,
--- 409 for a write under an archived project. `target` defaults to the task
--- (task.delete needs its created_by). Returns row.
function M.authorize(user, action, row, target)
  if row == nil then
    errors.not_found("task not found")
  end
  local project = M.project_of(row)
  local ok, why = permissions.can(user, action, project, target or row)
  if not ok then
    if why == "not_found" then
      errors.not_found("task not found")
    end
    errors.forbidden("your role in this project does not allow this")
  end
  if project.status == "archived" and not permissions.ARCHIVE_EXEMPT[action] then
    errors.conflict("the project is archived; reactivate it first")
  end
  return row
end

--- M.load + M.authorize: the task row, or a raised 404 / 403 / 409.
function M.get(user, id, action, lock, target)
  return M.authorize(user, action, M.load(user, id, lock), target)
end

--- M.get without a lock, for answering with the task as it is: the Task
--- object already written as JSON (M.PROJECTION's) and the row's id,
--- version and access columns (the rest of the row is not converted).
function M.get_json(user, id, action)
  local task, row
  if uuid.valid(id) then
    task, row = db.one_json(M.SELECT, PROJECTION_ONE, id, user.id)
  end
  M.authorize(user, action, row)
  return task, row
end

return M
