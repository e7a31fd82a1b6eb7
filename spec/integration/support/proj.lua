-- Helpers for the project and member specs (API.md §3) on top of the shared
-- client spec/integration/helper.lua: sessions (including a global admin),
-- projects built straight in the database for table-driven specs, exact
-- Project / Member shapes, and a cursor walker for list endpoints.
local h = require "spec.integration.helper"
local luassert = require "luassert"

local M = {}

local API = "/api/v1"
M.API = API

M.PROJECT_KEYS = "createdAt,description,id,memberCount,name,ownerId,role,status,updatedAt,visibility"
M.MEMBER_KEYS = "email,joinedAt,name,role,userId"

local sql = h.sql_literal

-- ---- HTTP ---------------------------------------------------------------------

--- call(method, path, token [, body]) -> {status, body, headers, raw}; paths
--- are relative to /api/v1.
function M.call(method, path, token, body)
  return h.call(method, API .. path, { token = token, body = body })
end

-- ---- users --------------------------------------------------------------------

--- A registered, logged-in user: {email, password, name, user, access, id}.
function M.user(name)
  local s = h.session({ name = name or "Proj User" })
  s.id = s.user.id
  return s
end

--- A user whose global role is admin: promoted in the database, then logged
--- in again so the access token's role claim says admin.
function M.global_admin(name)
  local s = M.user(name or "Global Admin")
  h.psql(("UPDATE users SET role = 'admin' WHERE email = %s"):format(sql(s.email)))
  local d = h.login(s.email, s.password)
  s.access = d.accessToken
  luassert.are.equal("admin", d.user.role)
  return s
end

--- `n` users inserted straight into the database, for specs that only need
--- them to exist (no password that works, no token). Returns a list of
--- {id, email, name}.
function M.bare_users(n, prefix)
  local values = {}
  for i = 1, n do
    values[i] = ("(%s, 'x', %s)"):format(sql(h.unique_email(prefix or "bare"):lower()),
      sql((prefix or "Bare") .. " " .. i))
  end
  local out = h.psql(("INSERT INTO users (email, password_hash, name) VALUES %s"
    .. " RETURNING id || '|' || email || '|' || name"):format(table.concat(values, ", ")))
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local id, email, name = line:match("^([^|]+)|([^|]+)|(.*)$")
    list[#list + 1] = { id = id, email = email, name = name }
  end
  luassert.are.equal(n, #list)
  return list
end

-- ---- projects -------------------------------------------------------------------

--- Creates a project through the API as `owner` (asserting 201) and returns
--- the Project.
function M.create(owner, body)
  local res = M.call("POST", "/projects", owner.access, body or { name = "Spec project" })
  local b = h.expect_status(res, 201)
  return b.data
end

--- Builds a project straight in the database (no HTTP, no bcrypt): `owner`
--- (a user id) owns it, `members` maps user id -> role. opts: name,
--- visibility, status, description, created_at (a timestamp literal; all
--- memberships get it as joined_at too). Returns the project id.
function M.make(owner, members, opts)
  opts = opts or {}
  local ts = opts.created_at and sql(opts.created_at) or "NULL"
  local values = { ("(%s::uuid, 'owner')"):format(sql(owner)) }
  for id, role in pairs(members or {}) do
    values[#values + 1] = ("(%s::uuid, %s)"):format(sql(id), sql(role))
  end
  return h.psql(([[
    WITH p AS (
      INSERT INTO projects (name, description, visibility, status, owner_id, created_at, updated_at)
      VALUES (%s, %s, %s, %s, %s, coalesce(%s::timestamptz, now()), coalesce(%s::timestamptz, now()))
      RETURNING id, created_at),
    m AS (
      INSERT INTO project_members (project_id, user_id, role, joined_at)
      SELECT p.id, v.u, v.r, p.created_at FROM p, (VALUES %s) AS v(u, r))
    SELECT id FROM p]]):format(sql(opts.name or "Fixture project"), sql(opts.description or ""),
    sql(opts.visibility or "private"), sql(opts.status or "active"), sql(owner), ts, ts,
    table.concat(values, ", ")))
end

--- Builds many projects in one statement (one psql run instead of one per
--- project): each gets `owner` and the same `members` (user id -> role).
--- `specs` is a list of {key = <unique string>, name, visibility, status,
--- created_at}; the key is stored as the description. Returns a map
--- key -> project id.
function M.make_many(owner, members, specs)
  local rows, roles = {}, { ("(%s::uuid, 'owner')"):format(sql(owner)) }
  for i, s in ipairs(specs) do
    rows[i] = ("(%s, %s, %s, %s, %s::timestamptz)"):format(sql(s.key), sql(s.name or "Fixture project"),
      sql(s.visibility or "private"), sql(s.status or "active"),
      s.created_at and sql(s.created_at) or "NULL")
  end
  for id, role in pairs(members or {}) do
    roles[#roles + 1] = ("(%s::uuid, %s)"):format(sql(id), sql(role))
  end
  local out = h.psql(([[
    WITH s(key, name, visibility, status, created_at) AS (VALUES %s),
    p AS (
      INSERT INTO projects (description, name, visibility, status, owner_id, created_at, updated_at)
      SELECT s.key, s.name, s.visibility, s.status, %s, coalesce(s.created_at, now()),
             coalesce(s.created_at, now())
        FROM s
      RETURNING id, description, created_at),
    m AS (
      INSERT INTO project_members (project_id, user_id, role, joined_at)
      SELECT p.id, v.u, v.r, p.created_at FROM p, (VALUES %s) AS v(u, r))
    SELECT id || '=' || description FROM p]]):format(table.concat(rows, ", "), sql(owner),
    table.concat(roles, ", ")))
  local map = {}
  for line in out:gmatch("[^\n]+") do
    local id, key = line:match("^(%x+%-[%x-]+)=(.*)$")
    map[key] = id
  end
  for _, s in ipairs(specs) do
    luassert.is_string(map[s.key], "no project made for " .. s.key)
  end
  return map
end

--- Inserts a task row directly (the tasks routes are someone else's) and
--- returns its id.
function M.task(project_id, created_by, assignee_id, title)
  return h.psql(([[
    INSERT INTO tasks (project_id, title, created_by, assignee_id)
    VALUES (%s, %s, %s, %s) RETURNING id]]):format(sql(project_id), sql(title or "Fixture task"),
    sql(created_by), assignee_id and sql(assignee_id) or "NULL"))
end

--- The role of `user_id` in `project_id` according to the database ("" if none).
function M.db_role(project_id, user_id)
  return h.psql(("SELECT role FROM project_members WHERE project_id = %s AND user_id = %s"):format(
    sql(project_id), sql(user_id)))
end

--- A syntactically valid UUID that names nothing.
function M.nil_uuid()
  local r = h.random_word(32):gsub("[^%x]", "b")
  return ("%s-%s-4%s-a%s-%s"):format(r:sub(1, 8), r:sub(9, 12), r:sub(14, 16), r:sub(18, 20),
    r:sub(21, 32))
end

-- ---- shapes -----------------------------------------------------------------------

--- Asserts the exact Project shape of API.md §3 and returns it.
function M.expect_project(p)
  luassert.is_table(p, "Project is not an object")
  luassert.are.equal(M.PROJECT_KEYS, h.keys(p))
  luassert.is_truthy(p.id:match(h.UUID), "id " .. tostring(p.id))
  luassert.is_truthy(p.ownerId:match(h.UUID), "ownerId " .. tostring(p.ownerId))
  luassert.is_string(p.name)
  luassert.is_string(p.description)
  luassert.is_truthy(p.visibility == "private" or p.visibility == "public", p.visibility)
  luassert.is_truthy(p.status == "active" or p.status == "archived", p.status)
  luassert.is_truthy(p.role == h.null or p.role == "owner" or p.role == "admin" or p.role == "member"
    or p.role == "viewer", tostring(p.role))
  luassert.is_number(p.memberCount)
  luassert.is_truthy(p.memberCount >= 1 and p.memberCount == math.floor(p.memberCount))
  luassert.is_truthy(p.createdAt:match(h.TIMESTAMP), "createdAt " .. tostring(p.createdAt))
  luassert.is_truthy(p.updatedAt:match(h.TIMESTAMP), "updatedAt " .. tostring(p.updatedAt))
  return p
end

--- Asserts the exact Member shape of API.md §3 and returns it.
function M.expect_member(m)
  luassert.is_table(m, "Member is not an object")
  luassert.are.equal(M.MEMBER_KEYS, h.keys(m))
  luassert.is_truthy(m.userId:match(h.UUID), "userId " .. tostring(m.userId))
  luassert.is_string(m.name)
  luassert.is_string(m.email)
  luassert.is_truthy(m.role == "owner" or m.role == "admin" or m.role == "member" or m.role == "viewer",
    tostring(m.role))
  luassert.is_truthy(m.joinedAt:match(h.TIMESTAMP), "joinedAt " .. tostring(m.joinedAt))
  return m
end

--- Asserts a list answer's envelope {data: [...], meta: {limit, nextCursor}}.
function M.expect_list(res, limit)
  local b = h.expect_status(res, 200)
  luassert.are.equal("data,meta", h.keys(b))
  luassert.are.equal("limit,nextCursor", h.keys(b.meta))
  luassert.are.equal(limit, b.meta.limit)
  luassert.is_table(b.data)
  luassert.is_truthy(res.raw:find('"data":%[') ~= nil, "data is not a JSON array: " .. res.raw)
  return b
end

--- Walks every page of `path` (with `query`, a string like "status=active",
--- or "") with `limit`, asserting each page's envelope; returns all items
--- and the number of pages.
function M.walk(path, token, limit, query)
  local items, pages, cursor = {}, 0, nil
  repeat
    local qs = ("?limit=%d"):format(limit)
    if query and query ~= "" then
      qs = qs .. "&" .. query
    end
    if cursor then
      qs = qs .. "&cursor=" .. cursor
    end
    local b = M.expect_list(M.call("GET", path .. qs, token), limit)
    luassert.is_truthy(#b.data <= limit)
    for _, it in ipairs(b.data) do
      items[#items + 1] = it
    end
    pages = pages + 1
    luassert.is_truthy(pages <= 1000, "cursor walk does not end")
    if b.meta.nextCursor ~= h.null then
      luassert.is_string(b.meta.nextCursor)
      luassert.are.equal(limit, #b.data, "a page before the last one must be full")
      cursor = b.meta.nextCursor
    else
      cursor = nil
    end
  until cursor == nil
  return items, pages
end

--- Percent-encodes a query-string value.
function M.qs(s)
  return (s:gsub("[^%w%-._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

return M
