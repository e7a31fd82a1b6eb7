-- The activity plugin: an audit trail of who did what to which entity, and
-- when, written by domain hooks inside each change's transaction (so the
-- trail has exactly the committed changes), and read back with
--   GET /projects/:id/activity   readers of the project; newest first;
--                                filters action (comma list), entityId
--
-- Entry: {id, action ("task.updated"), entityType ("task"), entityId,
--         actor: {id, name} | null, detail: {...}, createdAt}.
-- detail is small on purpose: names and changed fields, never a task's
-- description or a comment's text. When a project is deleted its trail
-- goes with it but for one entry recording the deletion.
local route = require "lib.route"
local db = require "lib.db"
local json = require "lib.json"
local errors = require "lib.errors"
local cursor = require "lib.cursor"
local projects = require "lib.projects"
local plugins = require "lib.plugins"

local ipairs = ipairs
local tointeger = math.tointeger

-- ---- SQL ---------------------------------------------------------------------

local INSERT = [[
  INSERT INTO activity (project_id, actor_id, action, entity_type, entity_id, detail, request_id)
  VALUES ($1::uuid, $2::uuid, $3, $4, $5::uuid, $6::jsonb, $7)]]

local PURGE_PROJECT = "DELETE FROM activity WHERE project_id = $1::uuid"

local LIST = [[
  SELECT a.id, a.seq, a.action, a.entity_type, a.entity_id, a.detail, a.created_at,
         a.actor_id, u.name AS actor_name
    FROM activity a
    LEFT JOIN users u ON u.id = a.actor_id
   WHERE a.project_id = $1
     AND ($2::bigint IS NULL OR a.seq < $2::bigint)
     AND ($3::text[] IS NULL OR a.action = ANY ($3::text[]))
     AND ($4::uuid IS NULL OR a.entity_id = $4::uuid)
   ORDER BY a.seq DESC
   LIMIT $5]]

-- ---- schemas -------------------------------------------------------------------

local SETTINGS = {
  type = "object",
  properties = {
    exclude = { type = "array", uniqueItems = true, default = {},
      items = { type = "string", enum = plugins.EVENTS },
      description = "domain events not to record" },
  },
}

local LIST_QUERY = {
  type = "object",
  properties = {
    limit = cursor.LIMIT,
    cursor = cursor.CURSOR,
    action = { type = "array", uniqueItems = true, maxItems = #plugins.EVENTS,
      items = { type = "string", enum = plugins.EVENTS }, description = "comma list of actions" },
    entityId = { type = "string", format = "uuid", description = "entries about this entity" },
  },
}

-- ---- what an event records -------------------------------------------------------

-- Task fields whose new value is worth a line in the trail.
local TASK_FIELDS = { "title", "status", "priority", "assigneeId", "dueDate" }

local function task_detail(task, changes)
  local d = { title = task.title }
  if changes then
    d.changes = json.array(changes)
    local changed = {}
    for _, c in ipairs(changes) do
      changed[c] = true
    end
    for _, f in ipairs(TASK_FIELDS) do
      if changed[f] and f ~= "title" then
        d[f] = json.nullable(task[f] ~= json.null and task[f] or nil)
      end
    end
  else
    d.status, d.priority = task.status, task.priority
    d.assigneeId = json.nullable(task.assigneeId ~= json.null and task.assigneeId or nil)
  end
  return d
end

-- event name -> function(data) returning entity_type, entity_id, detail
local RECORD = {
  ["task.created"] = function(d) return "task", d.task.id, task_detail(d.task) end,
  ["task.updated"] = function(d) return "task", d.task.id, task_detail(d.task, d.changes) end,
  ["task.deleted"] = function(d) return "task", d.taskId, {} end,
  ["comment.created"] = function(d) return "comment", d.comment.id, { taskId = d.taskId } end,
  ["comment.updated"] = function(d) return "comment", d.comment.id, { taskId = d.taskId } end,
  ["comment.deleted"] = function(d) return "comment", d.commentId, { taskId = d.taskId } end,
  ["project.updated"] = function(d)
    local p = d.project
    return "project", p.id, { name = p.name, status = p.status, visibility = p.visibility }
  end,
  ["project.deleted"] = function(d) return "project", d.projectId, {} end,
  ["member.added"] = function(d) return "member", d.member.userId, { role = d.member.role } end,
  ["member.updated"] = function(d) return "member", d.member.userId, { role = d.member.role } end,
  ["member.removed"] = function(d) return "member", d.userId, {} end,
}

local function on_event(ev, conf)
  local record = RECORD[ev.name]
  if record == nil or ev.project_id == nil then
    return
  end
  for _, name in ipairs(conf.exclude) do
    if name == ev.name then
      return
    end
  end
  if ev.name == "project.deleted" then
    db.query(PURGE_PROJECT, ev.project_id)
  end
  local entity_type, entity_id, detail = record(ev.data)
  db.query(INSERT, ev.project_id, ev.actor_id, ev.name, entity_type, entity_id,
    json.encode(detail), ev.request_id)
end

-- ---- the route -------------------------------------------------------------------------

local function public(row)
  return {
    id = row.id,
    action = row.action,
    entityType = row.entity_type,
    entityId = json.nullable(row.entity_id),
    actor = row.actor_id and { id = row.actor_id, name = json.nullable(row.actor_name) }
      or json.null,
    detail = row.detail or {},
    createdAt = row.created_at,
  }
end

local function routes()
  local r = route.group("/api/v1")
  r:get("/projects/:id/activity", { query = LIST_QUERY, tags = { "activity" },
    summary = "The project's audit trail, newest first (anyone who may read the project)" },
    function(req)
      local p = projects.get(req.user, req.params.id, "project.read")
      local q = req.query
      local before
      if q.cursor then
        before = tointeger(cursor.decode(q.cursor, 1)[1])
        if before == nil or before < 1 then
          errors.raise(400, "invalid_parameter", "invalid cursor",
            { { field = "cursor", message = "is not a valid cursor" } })
        end
      end
      local rows = db.query(LIST, p.id, before, q.action, q.entityId, q.limit + 1)
      local page, next_cursor = cursor.page(rows, q.limit, function(row)
        return { row.seq }
      end)
      local items = {}
      for i, row in ipairs(page) do
        items[i] = public(row)
      end
      return 200, { data = json.array(items), meta = { limit = q.limit, nextCursor = next_cursor } }
    end)
  return r
end

return {
  name = "activity",
  version = "1.0.0",
  priority = 1000, -- records before webhooks deliver
  description = "Audit trail of every domain event, per project",
  schema = SETTINGS,
  routes = routes,
  hooks = { ["*"] = on_event },
}
