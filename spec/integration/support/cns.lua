-- Set-up helpers for the comments, notifications and search specs: projects,
-- members and tasks. Each helper goes through the API when the route answers
-- as the contract says, and falls back to psql INSERTs otherwise (so these
-- specs do not wait for the projects and tasks routes), always returning the
-- same plain tables. Reads of stored notifications go through psql.
local h = require "spec.integration.helper"
local cjson = require "cjson"

local M = {}

local lit = h.sql_literal

local function sql_array(list)
  local parts = {}
  for i, v in ipairs(list or {}) do
    parts[i] = lit(v)
  end
  return "ARRAY[" .. table.concat(parts, ",") .. "]::text[]"
end

--- A session (helper.session) whose global role is admin (a new token).
function M.admin_session()
  local s = h.session({ name = "Admin" })
  h.psql("UPDATE users SET role = 'admin' WHERE id = " .. lit(s.user.id))
  local d = h.login(s.email, s.password)
  s.access, s.refresh = d.accessToken, d.refreshToken
  return s
end

--- Creates a project owned by `owner` (a session). opts: name, description,
--- visibility ("private" default). Returns {id=, name=, ownerId=}.
function M.project(owner, opts)
  opts = opts or {}
  local name = opts.name or ("Project " .. h.random_word(6))
  local description = opts.description or ""
  local visibility = opts.visibility or "private"
  local res = h.call("POST", "/api/v1/projects", { token = owner.access,
    body = { name = name, description = description, visibility = visibility } })
  if res.status == 201 and type(res.body) == "table" and type(res.body.data) == "table"
      and type(res.body.data.id) == "string" then
    return { id = res.body.data.id, name = name, ownerId = owner.user.id }
  end
  local id = h.psql(([[
    WITH p AS (INSERT INTO projects (name, description, visibility, owner_id)
               VALUES (%s, %s, %s, %s) RETURNING id, owner_id)
    INSERT INTO project_members (project_id, user_id, role)
    SELECT id, owner_id, 'owner' FROM p RETURNING project_id]]):format(
    lit(name), lit(description), lit(visibility), lit(owner.user.id)))
  return { id = id, name = name, ownerId = owner.user.id }
end

--- Adds `user` (a session) to `project` with `role` (default member); the
--- API call is made as `owner`.
function M.member(owner, project, user, role)
  role = role or "member"
  local res = h.call("POST", "/api/v1/projects/" .. project.id .. "/members", { token = owner.access,
    body = { userId = user.user.id, role = role } })
  if res.status == 201 then
    return
  end
  h.psql(("INSERT INTO project_members (project_id, user_id, role) VALUES (%s, %s, %s)"):format(
    lit(project.id), lit(user.user.id), lit(role)))
end

--- Creates a task in `project` as `creator` (a session). fields: title,
--- description, assigneeId. Returns {id=, projectId=, title=}.
function M.task(creator, project, fields)
  fields = fields or {}
  local title = fields.title or ("Task " .. h.random_word(6))
  local body = { title = title, description = fields.description, assigneeId = fields.assigneeId }
  local res = h.call("POST", "/api/v1/projects/" .. project.id .. "/tasks", { token = creator.access,
    body = body })
  if res.status == 201 and type(res.body) == "table" and type(res.body.data) == "table"
      and type(res.body.data.id) == "string" then
    return { id = res.body.data.id, projectId = project.id, title = title }
  end
  local id = h.psql(([[
    INSERT INTO tasks (project_id, title, description, created_by, assignee_id)
    VALUES (%s, %s, %s, %s, %s) RETURNING id]]):format(lit(project.id), lit(title),
    lit(fields.description or ""), lit(creator.user.id),
    fields.assigneeId and lit(fields.assigneeId) or "NULL"))
  return { id = id, projectId = project.id, title = title }
end

--- Archives (or reactivates) a project directly in the database.
function M.set_status(project, status)
  h.psql(("UPDATE projects SET status = %s WHERE id = %s"):format(lit(status), lit(project.id)))
end

--- The notifications stored for `user_id`, oldest first, as a list of
--- {type=, data=<decoded>, read=<bool>} (only those of the given types, if any).
function M.notifications(user_id, types)
  local filter = types and (" AND type = ANY(" .. sql_array(types) .. ")") or ""
  local out = h.psql(([[
    SELECT coalesce(json_agg(json_build_object('id', id, 'type', type, 'data', data,
                                               'read', read_at IS NOT NULL)
                             ORDER BY created_at, id), '[]')
      FROM notifications WHERE user_id = %s%s]]):format(lit(user_id), filter))
  return cjson.decode(out)
end

--- Inserts `n` notifications for `user_id` with distinct, increasing
--- created_at (one second apart, ending at `now`); returns their ids newest first.
function M.seed_notifications(user_id, n, type_)
  local out = h.psql(([[
    WITH ins AS (
      INSERT INTO notifications (user_id, type, data, created_at)
      SELECT %s, %s, jsonb_build_object('seq', g), now() - make_interval(secs => %d - g)
        FROM generate_series(1, %d) g
      RETURNING id, created_at)
    SELECT string_agg(id::text, ',' ORDER BY created_at DESC, id DESC) FROM ins]]):format(
    lit(user_id), lit(type_ or "task_assigned"), n, n))
  local ids = {}
  for id in out:gmatch("[^,]+") do
    ids[#ids + 1] = id
  end
  return ids
end

--- A set (table id -> true) of the values of `field` in a list of tables.
function M.set_of(list, field)
  local s = {}
  for _, v in ipairs(list or {}) do
    s[v[field]] = true
  end
  return s
end

--- Number of entries in a table.
function M.count(t)
  local n = 0
  for _ in pairs(t or {}) do
    n = n + 1
  end
  return n
end

return M
