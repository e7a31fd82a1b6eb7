-- /api/v1/tasks and /api/v1/projects/:id/tasks (API.md §4): create, list
-- (filters, eight sort orders, keyset cursors), read with ETag, PATCH with
-- If-Match and optimistic concurrency, delete. Permissions come from
-- policies.permissions through lib.tasks / lib.projects; every write runs in
-- one transaction that also publishes its §8 event and stores the §6
-- notifications (both delivered only after commit).
local route = require "lib.route"
local db = require "lib.db"
local errors = require "lib.errors"
local events = require "lib.events"
local json = require "lib.json"
local notify = require "lib.notify"
local cursor = require "lib.cursor"
local uuid = require "lib.uuid"
local instant = require "lib.instant"
local projects = require "lib.projects"
local tasks = require "lib.tasks"
local task_list = require "lib.task_list"
local plugins = require "lib.plugins"
local schema = require "lib.schema"

local type, pairs, tostring = type, pairs, tostring
local tointeger = math.tointeger

local r = route.group("/api/v1")

-- ---- SQL ---------------------------------------------------------------------

-- The project a task is created in, with the caller's role; FOR SHARE keeps
-- it from being archived or deleted before the task is committed.
local PROJECT_FOR_SHARE = projects.SELECT .. [[
   WHERE p.id = $1 FOR SHARE OF p]]

-- Is $2 a member of project $1? FOR KEY SHARE holds the membership until
-- commit, so a concurrent removal (which unassigns the user's tasks) waits
-- and then sees the task.
local MEMBER_FOR_KEY_SHARE = [[
  SELECT 1 AS ok FROM project_members WHERE project_id = $1 AND user_id = $2 FOR KEY SHARE]]

local INSERT_TASK = [[
  INSERT INTO tasks AS t (project_id, title, description, status, priority, assignee_id,
                          created_by, due_date, completed_at, tags)
  VALUES ($1, $2, $3, $4::text, $5, $6::uuid, $7, $8::timestamptz,
          CASE WHEN $4::text = 'done' THEN now() END, $9::text[])
  RETURNING ]] .. tasks.COLUMNS

-- True when the new values (n) differ from the stored ones (t).
local CHANGED = [[
  ((t.title, t.description, t.status, t.priority, t.assignee_id, t.due_date, t.tags)
     IS DISTINCT FROM (n.title, n.description, n.status, n.priority, n.assignee_id, n.due_date, n.tags))]]

-- Writes the whole merged row, but only over the version that was read
-- ($2): a concurrent change makes it match no row instead of being lost.
-- version and updated_at move only when a value really changes; completed_at
-- is set when the status becomes done, kept while it stays done, cleared
-- when it leaves done.
local UPDATE_TASK = [[
  UPDATE tasks AS t SET
    title = n.title, description = n.description, status = n.status, priority = n.priority,
    assignee_id = n.assignee_id, due_date = n.due_date, tags = n.tags,
    completed_at = CASE WHEN n.status <> 'done' THEN NULL
                        WHEN t.status = 'done' THEN t.completed_at
                        ELSE now() END,
    version = t.version + CASE WHEN ]] .. CHANGED .. [[ THEN 1 ELSE 0 END,
    updated_at = CASE WHEN ]] .. CHANGED .. [[ THEN now() ELSE t.updated_at END
  FROM (SELECT $3::text AS title, $4::text AS description, $5::text AS status,
               $6::text AS priority, $7::uuid AS assignee_id, $8::timestamptz(3) AS due_date,
               $9::text[] AS tags) AS n
  WHERE t.id = $1 AND t.version = $2
  RETURNING ]] .. tasks.COLUMNS

local DELETE_TASK = [[
  DELETE FROM tasks WHERE id = $1 AND ($2::integer IS NULL OR version = $2::integer)]]

-- The list's statements (one per filter shape, with the access check to
-- one project folded in) come from lib.task_list.

-- ---- schemas -----------------------------------------------------------------

local STATUSES = { "todo", "in_progress", "in_review", "done", "cancelled" }
local PRIORITIES = { "low", "medium", "high", "urgent" }
local SORT_NAMES = { "-createdAt", "createdAt", "-updatedAt", "updatedAt", "dueDate", "-dueDate",
  "priority", "-priority" }

local TITLE = { type = "string", minLength = 1, maxLength = 500, trim = true }
local DESCRIPTION = { type = "string", maxLength = 50000 }
local STATUS = { type = "string", enum = STATUSES }
local PRIORITY = { type = "string", enum = PRIORITIES }
local ASSIGNEE = { type = "string", format = "uuid", nullable = true,
  description = "a member of the project, or null" }
local DUE_DATE = { type = "string", format = "date", nullable = true,
  description = "a date (00:00 UTC) or a date-time (any RFC 3339 offset); returned as a date-time "
    .. "in UTC. Its UTC instant must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z "
    .. "(422 otherwise: the API's four-digit years cannot express others)" }
local TAG = { type = "string", minLength = 1, maxLength = 50, trim = true }
local TAGS = { type = "array", items = TAG, maxItems = 20, uniqueItems = true }

local function fields(extra)
  local props = {
    title = TITLE,
    description = { type = "string", maxLength = 50000, default = "" },
    status = { type = "string", enum = STATUSES, default = "todo" },
    priority = { type = "string", enum = PRIORITIES, default = "medium" },
    assigneeId = ASSIGNEE,
    dueDate = DUE_DATE,
    tags = { type = "array", items = TAG, maxItems = 20, uniqueItems = true, default = {} },
  }
  for k, v in pairs(extra or {}) do
    props[k] = v
  end
  return props
end

local function list_query(with_project)
  local props = {
    status = { type = "array", items = STATUS, minItems = 1, maxItems = 5,
      description = "comma list of statuses" },
    priority = { type = "array", items = PRIORITY, minItems = 1, maxItems = 4,
      description = "comma list of priorities" },
    assigneeId = { type = "string", minLength = 1, maxLength = 36,
      description = "a user id, `me` or `none` (unassigned)" },
    createdBy = { type = "string", format = "uuid" },
    tag = { type = "string", minLength = 1, maxLength = 50, trim = true },
    dueBefore = { type = "string", format = "date", description = "due strictly before" },
    dueAfter = { type = "string", format = "date", description = "due at or after" },
    q = { type = "string", minLength = 1, maxLength = 500, trim = true,
      description = "full-text search over title and description (websearch syntax)" },
    sort = { type = "string", enum = SORT_NAMES, default = "-createdAt" },
    limit = cursor.LIMIT,
    cursor = cursor.CURSOR,
  }
  if with_project then
    props.projectId = { type = "string", format = "uuid" }
  end
  return { type = "object", properties = props }
end

local S = {
  create = { type = "object", required = { "projectId", "title" },
    properties = fields({ projectId = { type = "string", format = "uuid" } }) },
  create_in_project = { type = "object", required = { "title" }, properties = fields() },
  update = { type = "object", properties = {
    title = TITLE, description = DESCRIPTION, status = STATUS, priority = PRIORITY,
    assigneeId = ASSIGNEE, dueDate = DUE_DATE, tags = TAGS,
  } },
  list = list_query(true),
  list_in_project = list_query(false),
}

-- ---- helpers -----------------------------------------------------------------

-- A plugin's change to a task (lib.plugins amend hooks) is validated like a
-- client's PATCH body, by a validator of its own (validators are not
-- reentrant).
local validate_change = schema.compile(S.update)

local MAX_ATTEMPTS = 3

local function etag(row)
  return '"' .. tostring(row.version) .. '"'
end

local time_key = cursor.time

local function rank_key(v)
  local n = type(v) == "number" and tointeger(v)
  if not n or n < 1 or n > 4 then
    cursor.bad()
  end
  return n
end

local function due_key(v)
  if v == json.null then
    return nil
  end
  return time_key(v)
end

-- Per sort order: the cursor's key from a row, and its check on the way in.
local SORTS = {
  createdAt = { key = function(t) return t.created_at end, check = time_key },
  ["-createdAt"] = { key = function(t) return t.created_at end, check = time_key },
  updatedAt = { key = function(t) return t.updated_at end, check = time_key },
  ["-updatedAt"] = { key = function(t) return t.updated_at end, check = time_key },
  priority = { key = function(t) return t.priority_rank end, check = rank_key },
  ["-priority"] = { key = function(t) return t.priority_rank end, check = rank_key },
  dueDate = { key = function(t) return json.nullable(t.due_date) end, check = due_key },
  ["-dueDate"] = { key = function(t) return json.nullable(t.due_date) end, check = due_key },
}

-- If-Match: nil when absent (or empty or `*`), else a set of versions. Takes
-- `"3"`, `3`, `W/"3"` and comma lists of them; anything else matches nothing.
local function parse_if_match(value)
  if value == nil or not value:find("%S") then
    return nil
  end
  local set = {}
  for item in value:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$"):gsub("^[Ww]/", "")
    if item == "*" then
      return nil
    end
    local digits = item:match('^"(%d+)"$') or item:match("^(%d+)$")
    if digits and #digits <= 9 then
      set[tointeger(digits + 0)] = true
    end
  end
  return set
end

-- 412 with the ETag of the version that is current now, so the client can
-- read it and decide without another round trip for the tag.
local function precondition_failed(row)
  errors.raise(412, "precondition_failed", "the task has changed (version " .. row.version .. ")",
    nil, { ETag = etag(row) })
end

-- Raises 422 on assigneeId unless `user_id` is a member of the project.
local function check_assignee(project_id, user_id)
  if db.one(MEMBER_FOR_KEY_SHARE, project_id, user_id) == nil then
    errors.field("assigneeId", "must be a member of the project")
  end
end

-- The body value of `field` over the stored one: absent keeps `stored`,
-- null clears (nil binds as NULL).
local function merge(body, field, stored)
  local v = body[field]
  if v == nil then
    return stored
  end
  if v == json.null then
    return nil
  end
  return v
end

-- A date or date-time the schema accepted, as the UTC instant PostgreSQL is
-- given ("...T...Z"; nil and json.null pass through). Out of range: 422 for
-- a body field, 400 for a query parameter.
local function instant_of(v, field, in_query)
  if type(v) ~= "string" then
    return v
  end
  local t, why = instant.utc(v)
  if t == nil then
    if in_query then
      errors.raise(400, "invalid_parameter", "invalid query parameter", { { field = field, message = why } })
    end
    errors.field(field, why)
  end
  return t
end

-- Writes the merged body `b` over task `row` (read inside this transaction)
-- as a new version, only over row.version. Returns the new row (version
-- unchanged when no value changed), or nil when the version moved.
local function write(row, b)
  local assignee = merge(b, "assigneeId", row.assignee_id)
  if assignee ~= nil and assignee:lower() ~= row.assignee_id then
    check_assignee(row.project_id, assignee)
  end
  return db.one(UPDATE_TASK, row.id, row.version,
    merge(b, "title", row.title), merge(b, "description", row.description),
    merge(b, "status", row.status), merge(b, "priority", row.priority), assignee,
    merge(b, "dueDate", row.due_date), merge(b, "tags", row.tags))
end

-- Runs the plugins' amend hooks of `name` on task row `t` just written in
-- this transaction; `before` (the Task before the request, for
-- task.updated) gives the event's changes. Each hook's change is checked by
-- the PATCH schema and rules (422 -> the hook's failure) and written as a
-- new version over the row of the data it saw (a hook rolled back to its
-- savepoint leaves the one before). Returns the final row.
local function amend(name, t, before)
  if not plugins.amends(name) then
    return t -- no plugin amends tasks: nothing to build
  end
  local rows = {} -- event data -> the row it was made from
  local function data_of(row)
    local task = tasks.public(row)
    local data = { task = task, changes = before and tasks.changes(before, task) or nil }
    rows[data] = row
    return data
  end
  local final = plugins.amend(name, "project:" .. t.project_id, data_of(t), function(changes, data)
    local b, details = validate_change(changes)
    if not b then
      errors.validation(details, "the plugin's change was refused")
    end
    b.dueDate = instant_of(b.dueDate, "dueDate")
    local n = write(rows[data], b)
    if n == nil then
      error("the task changed under the amend hook", 0)
    end
    return data_of(n)
  end)
  return rows[final]
end

-- ---- handlers ----------------------------------------------------------------

local function create(req, project_id)
  local b, user = req.body, req.user
  b.dueDate = instant_of(b.dueDate, "dueDate")
  local row = db.tx(function()
    local project = projects.authorize(user, "task.create",
      uuid.valid(project_id) and db.one(PROJECT_FOR_SHARE, project_id, user.id) or nil)
    if type(b.assigneeId) == "string" then
      check_assignee(project.id, b.assigneeId)
    end
    local t = db.one(INSERT_TASK, project.id, b.title, b.description, b.status, b.priority,
      b.assigneeId, user.id, b.dueDate, b.tags)
    t = amend("task.created", t) -- plugins' changes, each a new version
    local task = tasks.public(t)
    events.publish("project:" .. project.id, "task:created", { task = task })
    notify.emit("task.created", { actor = user.id, task = task, project = project })
    return t
  end)
  return 201, { data = tasks.public(row) },
    { ETag = etag(row), Location = "/api/v1/tasks/" .. row.id }
end

-- The list's filters and cursor as lib.task_list values. Raises 400 for a
-- bad assigneeId or cursor.
local function list_values(q, user)
  local assignee, unassigned = nil, false
  if q.assigneeId == "me" then
    assignee = user.id
  elseif q.assigneeId == "none" then
    unassigned = true
  elseif q.assigneeId ~= nil then
    if not uuid.valid(q.assigneeId) then
      errors.raise(400, "invalid_parameter", "invalid query parameter",
        { { field = "assigneeId", message = "must be a user id, me or none" } })
    end
    assignee = q.assigneeId
  end
  local after_key, after_id
  if q.cursor ~= nil then
    local v = cursor.decode(q.cursor, 2)
    after_key = SORTS[q.sort].check(v[1])
    if not uuid.valid(v[2]) then
      cursor.bad()
    end
    after_id = v[2]
  end
  return { user = user.id, status = q.status, priority = q.priority, assignee = assignee,
    unassigned = unassigned, created_by = q.createdBy, tag = q.tag, due_before = q.dueBefore,
    due_after = q.dueAfter, q = q.q, after_key = after_key, after_id = after_id,
    limit = q.limit + 1 }
end

local function list(req, project_id)
  local q, user = req.query, req.user
  q.dueBefore = instant_of(q.dueBefore, "dueBefore", true)
  q.dueAfter = instant_of(q.dueAfter, "dueAfter", true)
  if project_id ~= nil and not uuid.valid(project_id) then
    errors.not_found("project not found")
  end
  local ok, values = pcall(list_values, q, user)
  if not ok then
    -- Bad input: the access check still answers first (404 before 400).
    if project_id ~= nil and errors.is(values) then
      projects.authorize(user, "task.read", projects.load(user, project_id))
    end
    error(values, 0)
  end
  values.project = project_id
  local key = task_list.key(project_id ~= nil, q.sort, values)
  -- The page is written as JSON by C from the result (tasks.PROJECTION);
  -- the first row comes back as a table for the access check, and the last
  -- row of a full page for the cursor.
  local data, n, last, first = db.query_json(task_list.SQL[key], tasks.PROJECTION, q.limit,
    task_list.args(key, values))
  if project_id ~= nil then
    -- One project: the access columns are on every row; without a row (no
    -- such project, or an empty page) the project is loaded to decide.
    projects.authorize(user, "task.read",
      first and tasks.project_of(first) or projects.load(user, project_id))
  end
  local sort = SORTS[q.sort]
  local next_cursor = n > q.limit and cursor.encode({ sort.key(last), last.id }) or json.null
  return 200, { data = data, meta = { limit = q.limit, nextCursor = next_cursor } }
end

local function update(req)
  local b, user, id = req.body, req.user, req.params.id
  b.dueDate = instant_of(b.dueDate, "dueDate")
  local if_match = parse_if_match(req.headers["if-match"])
  local after = db.tx(function()
    local lock = "share"
    for _ = 1, MAX_ATTEMPTS do
      local row = tasks.get(user, id, "task.update", lock)
      if if_match and not if_match[row.version] then
        precondition_failed(row)
      end
      local t = write(row, b)
      if t then
        if t.version == row.version then
          return t -- nothing changed: no new version, no event
        end
        local before = tasks.public(row)
        t = amend("task.updated", t, before) -- plugins' changes, each a new version
        local task = tasks.public(t)
        local ch = tasks.changes(before, task)
        events.publish("project:" .. t.project_id, "task:updated", { task = task, changes = ch })
        notify.emit("task.updated", { actor = user.id, task = task, before = before, changes = ch })
        return t
      end
      if if_match then -- changed since our read: answer with the version now current
        precondition_failed(tasks.get(user, id, "task.update", "share"))
      end
      -- Someone else changed it between our read and our write: read again,
      -- this time holding the row, and merge the body over the new values.
      lock = "update"
    end
    errors.conflict("the task is changing too fast; try again")
  end)
  return 200, { data = tasks.public(after) }, { ETag = etag(after) }
end

local function delete(req)
  local user, id = req.user, req.params.id
  local if_match = parse_if_match(req.headers["if-match"])
  db.tx(function()
    local row = tasks.get(user, id, "task.delete", "share")
    if if_match and not if_match[row.version] then
      precondition_failed(row)
    end
    local _, n = db.query(DELETE_TASK, row.id, if_match and row.version or nil)
    if n == 0 then
      if if_match then -- changed since our read (gone: tasks.get answers 404)
        precondition_failed(tasks.get(user, id, "task.delete", "share"))
      end
      errors.not_found("task not found")
    end
    events.publish("project:" .. row.project_id, "task:deleted",
      { taskId = row.id, projectId = row.project_id })
  end)
  return 204
end

-- ---- routes ------------------------------------------------------------------

-- Response documents for the OpenAPI description (JSON Schema 2020-12).
local NULLABLE_STRING = json.array({ "string", "null" })
local TIME = { type = "string", format = "date-time" }
local TASK_DOC = {
  type = "object",
  required = json.array({ "id", "projectId", "title", "description", "status", "priority", "assigneeId",
    "createdBy", "dueDate", "completedAt", "tags", "version", "createdAt", "updatedAt" }),
  properties = {
    id = { type = "string", format = "uuid" },
    projectId = { type = "string", format = "uuid" },
    title = { type = "string" },
    description = { type = "string" },
    status = { type = "string", enum = STATUSES },
    priority = { type = "string", enum = PRIORITIES },
    assigneeId = { type = NULLABLE_STRING, format = "uuid" },
    createdBy = { type = "string", format = "uuid" },
    dueDate = { type = NULLABLE_STRING, format = "date-time" },
    completedAt = { type = NULLABLE_STRING, format = "date-time",
      description = "set when the status becomes done, cleared when it leaves done" },
    tags = { type = "array", items = { type = "string" } },
    version = { type = "integer", minimum = 1, description = "also sent as the ETag" },
    createdAt = TIME,
    updatedAt = TIME,
  },
}
local ONE_TASK = { type = "object", required = json.array({ "data" }), properties = { data = TASK_DOC } }
local TASK_LIST = {
  type = "object",
  required = json.array({ "data", "meta" }),
  properties = {
    data = { type = "array", items = TASK_DOC },
    meta = { type = "object", required = json.array({ "limit", "nextCursor" }), properties = {
      limit = { type = "integer" },
      nextCursor = { type = NULLABLE_STRING, description = "pass as cursor for the next page" },
    } },
  },
}

local function doc(status, description, body)
  return { [status] = { description = description, schema = body } }
end

r:post("/tasks", { body = S.create, status = 201, tags = { "tasks" }, errors = { 403, 404, 409 },
  responses = doc(201, "The new task (headers ETag and Location)", ONE_TASK),
  summary = "Create a task in a project (member and up)",
  description = "Event task:created; a task_assigned notification to an assignee other than the caller. "
    .. "404 for a project the caller may not read, 409 under an archived project, 422 on assigneeId "
    .. "for a user who is not a member." }, function(req)
  return create(req, req.body.projectId)
end)

r:post("/projects/:id/tasks", { body = S.create_in_project, status = 201, tags = { "tasks" },
  errors = { 403, 409 }, responses = doc(201, "The new task (headers ETag and Location)", ONE_TASK),
  summary = "Create a task in this project (member and up)",
  description = "Same as POST /tasks, with the project in the path." }, function(req)
  return create(req, req.params.id)
end)

r:get("/tasks", { query = S.list, tags = { "tasks" }, errors = { 404 },
  responses = doc(200, "A page of tasks", TASK_LIST),
  summary = "List tasks: of one project (projectId) or of every project the caller is a member of",
  description = "Keyset-paginated; sort is one of createdAt, updatedAt, dueDate, priority, each "
    .. "optionally prefixed with - for descending (default -createdAt); ties go by id. Tasks without "
    .. "a due date sort last in both directions; priority sorts by rank (low < medium < high < "
    .. "urgent). A projectId the caller may not read answers 404." }, function(req)
  return list(req, req.query.projectId)
end)

r:get("/projects/:id/tasks", { query = S.list_in_project, tags = { "tasks" },
  responses = doc(200, "A page of tasks", TASK_LIST),
  summary = "List the tasks of one project",
  description = "Same filters, sorts and pages as GET /tasks." }, function(req)
  return list(req, req.params.id)
end)

r:get("/tasks/:id", { tags = { "tasks" },
  responses = doc(200, "The task; ETag: \"<version>\" (If-None-Match with it answers 304)", ONE_TASK),
  summary = "One task" }, function(req)
  local task, row = tasks.get_json(req.user, req.params.id, "task.read")
  local tag = etag(row)
  local inm = parse_if_match(req.headers["if-none-match"])
  if inm and inm[row.version] then
    return 304, nil, { ETag = tag }
  end
  return 200, { data = task }, { ETag = tag }
end)

r:patch("/tasks/:id", { body = S.update, tags = { "tasks" }, errors = { 403, 409, 412 },
  responses = doc(200, "The task after the change (header ETag)", ONE_TASK),
  summary = "Change the named fields of a task",
  description = "Fields left out are never touched; null clears assigneeId and dueDate. If-Match "
    .. "(\"<version>\", bare or weak) must match the current version, else 412. Event task:updated "
    .. "with the changed fields; notifications task_assigned and task_status_changed." }, function(req)
  return update(req)
end)

r:delete("/tasks/:id", { status = 204, tags = { "tasks" }, errors = { 403, 409, 412 },
  summary = "Delete a task (its creator while member+, admin, owner)",
  description = "Honours If-Match like PATCH. Event task:deleted." }, function(req)
  return delete(req)
end)

return r
