-- Helpers for the task specs (API.md §4) on top of the shared client
-- spec/integration/helper.lua: users, projects and memberships built
-- straight in the database (so the task specs do not depend on the project
-- routes), task creation, the exact Task shape, a cursor walker, and
-- concurrent requests through background curl processes.
local h = require "spec.integration.helper"
local luassert = require "luassert"
local cjson = require "cjson"

local M = {}

local API = "/api/v1"
M.API = API
M.TASK_KEYS = "assigneeId,completedAt,createdAt,createdBy,description,dueDate,id,priority,"
  .. "projectId,status,tags,title,updatedAt,version"

local sql = h.sql_literal

-- ---- HTTP ---------------------------------------------------------------------

--- call(method, path, token [, body [, headers]]) -> {status, body, headers, raw};
--- paths are relative to /api/v1.
function M.call(method, path, token, body, headers)
  return h.call(method, API .. path, { token = token, body = body, headers = headers })
end

--- A query string from a table (values are URL-encoded; keys sorted).
function M.query(params)
  local keys = {}
  for k in pairs(params) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = tostring(params[k]):gsub("[^%w%-%._~]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
    parts[#parts + 1] = k .. "=" .. v
  end
  if #parts == 0 then
    return ""
  end
  return "?" .. table.concat(parts, "&")
end

-- ---- users and projects ---------------------------------------------------------

--- A registered, logged-in user: {email, password, user, access, id}.
function M.user(name)
  local s = h.session({ name = name or "Task User" })
  s.id = s.user.id
  return s
end

--- A project built in the database, owned by `owner` (a user from M.user);
--- opts.visibility ("private"), opts.status ("active"), opts.members
--- ({ {user, role}, ... }). Returns the project id.
function M.project(owner, opts)
  opts = opts or {}
  local id = h.psql(([[
    INSERT INTO projects (name, visibility, status, owner_id) VALUES ('Task spec', %s, %s, %s)
    RETURNING id]]):format(sql(opts.visibility or "private"), sql(opts.status or "active"),
    sql(owner.id)))
  id = id:match("%x+%-%x+%-%x+%-%x+%-%x+")
  h.psql(("INSERT INTO project_members (project_id, user_id, role) VALUES (%s, %s, 'owner')"):format(
    sql(id), sql(owner.id)))
  for _, m in ipairs(opts.members or {}) do
    M.add_member(id, m[1], m[2])
  end
  return id
end

--- Adds `user` to project `id` with `role` (or changes the role).
function M.add_member(id, user, role)
  h.psql(([[
    INSERT INTO project_members (project_id, user_id, role) VALUES (%s, %s, %s)
    ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role]]):format(
    sql(id), sql(user.id), sql(role)))
end

function M.remove_member(id, user)
  h.psql(("DELETE FROM project_members WHERE project_id = %s AND user_id = %s"):format(
    sql(id), sql(user.id)))
end

function M.set_project_status(id, status)
  h.psql(("UPDATE projects SET status = %s WHERE id = %s"):format(sql(status), sql(id)))
end

-- ---- tasks ----------------------------------------------------------------------

--- POST /projects/:id/tasks; returns the response.
function M.create_res(token, project_id, fields)
  return M.call("POST", "/projects/" .. project_id .. "/tasks", token, fields)
end

--- Creates a task (asserting 201) and returns the Task.
function M.create(token, project_id, fields)
  local res = M.create_res(token, project_id, fields or { title = "A task" })
  return h.expect_status(res, 201).data
end

--- Asserts the exact Task shape of API.md §4 and returns the task.
function M.expect_task(t)
  luassert.is_table(t, "Task is not an object")
  luassert.are.equal(M.TASK_KEYS, h.keys(t))
  luassert.is_truthy(t.id:match(h.UUID), "id " .. tostring(t.id))
  luassert.is_truthy(t.projectId:match(h.UUID), "projectId " .. tostring(t.projectId))
  luassert.is_string(t.title)
  luassert.is_string(t.description)
  luassert.is_truthy(({ todo = 1, in_progress = 1, in_review = 1, done = 1, cancelled = 1 })[t.status],
    "status " .. tostring(t.status))
  luassert.is_truthy(({ low = 1, medium = 1, high = 1, urgent = 1 })[t.priority],
    "priority " .. tostring(t.priority))
  luassert.is_truthy(t.assigneeId == h.null or tostring(t.assigneeId):match(h.UUID),
    "assigneeId " .. tostring(t.assigneeId))
  luassert.is_truthy(t.createdBy:match(h.UUID))
  for _, k in ipairs({ "dueDate", "completedAt" }) do
    luassert.is_truthy(t[k] == h.null or tostring(t[k]):match(h.TIMESTAMP), k .. " " .. tostring(t[k]))
  end
  luassert.are.equal(t.status == "done", t.completedAt ~= h.null, "completedAt iff done")
  luassert.is_table(t.tags)
  for _, tag in ipairs(t.tags) do
    luassert.is_string(tag)
  end
  luassert.is_truthy(math.tointeger(t.version), "version " .. tostring(t.version))
  luassert.is_true(t.version >= 1)
  luassert.is_truthy(t.createdAt:match(h.TIMESTAMP))
  luassert.is_truthy(t.updatedAt:match(h.TIMESTAMP))
  return t
end

--- Walks every page of GET `path` (relative to /api/v1, with its query
--- string but no cursor) and returns the ids in order. `between(page_no)`
--- runs after each page is fetched (to insert rows mid-walk).
function M.walk(token, path, between)
  local ids, cur, pages = {}, nil, 0
  repeat
    local sep = path:find("?", 1, true) and "&" or "?"
    local url = path .. (cur and (sep .. "cursor=" .. cur) or "")
    local res = M.call("GET", url, token)
    local b = h.expect_status(res, 200)
    for _, t in ipairs(b.data) do
      ids[#ids + 1] = t.id
    end
    pages = pages + 1
    luassert.is_true(pages <= 200, "too many pages")
    cur = b.meta.nextCursor
    if cur == h.null then
      cur = nil
    end
    if between and cur then
      between(pages)
    end
  until cur == nil
  return ids, pages
end

--- Notifications stored for `user_id` (optionally of `type`), oldest first:
--- a list of {type=, data=(decoded)}.
function M.notifications(user_id, ntype)
  local out = h.psql(([[
    SELECT coalesce(json_agg(json_build_object('type', type, 'data', data) ORDER BY created_at, id), '[]')
      FROM notifications WHERE user_id = %s AND (%s::text IS NULL OR type = %s::text)]]):format(
    sql(user_id), ntype and sql(ntype) or "NULL", ntype and sql(ntype) or "NULL"))
  return cjson.decode(out)
end

-- ---- concurrency through curl -------------------------------------------------------

local seq = 0

--- Sends `requests` (a list of {method=, path= (relative to /api/v1), token=,
--- body= (a table), headers= {name = value}}) all at once, each from its own
--- background curl process, and waits for all of them. Returns a list of
--- {status=, body=(decoded or nil), raw=} in the same order.
function M.curl_parallel(requests)
  seq = seq + 1
  local dir = ("/tmp/tasks-spec-%d-%d-%d"):format(os.time(), seq, math.random(1 << 30))
  assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
  local lines = {}
  for i, r in ipairs(requests) do
    local args = { "curl", "-s", "-m", "30", "-o", h.shell_quote(dir .. "/body." .. i), "-w", "'%{http_code}'",
      "-X", r.method, "-H", h.shell_quote("Authorization: Bearer " .. r.token) }
    for k, v in pairs(r.headers or {}) do
      args[#args + 1] = "-H"
      args[#args + 1] = h.shell_quote(k .. ": " .. v)
    end
    if r.body then
      local f = assert(io.open(dir .. "/req." .. i, "wb"))
      f:write(cjson.encode(r.body))
      f:close()
      args[#args + 1] = "-H"
      args[#args + 1] = "'Content-Type: application/json'"
      args[#args + 1] = "--data-binary"
      args[#args + 1] = h.shell_quote("@" .. dir .. "/req." .. i)
    end
    args[#args + 1] = h.shell_quote(h.base .. API .. r.path)
    lines[#lines + 1] = table.concat(args, " ") .. " > " .. h.shell_quote(dir .. "/code." .. i) .. " &"
  end
  lines[#lines + 1] = "wait"
  local script = dir .. "/run.sh"
  local f = assert(io.open(script, "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  assert(os.execute("sh " .. h.shell_quote(script)))
  local out = {}
  for i = 1, #requests do
    local cf = assert(io.open(dir .. "/code." .. i, "rb"))
    local code = tonumber(cf:read("a"))
    cf:close()
    local bf = io.open(dir .. "/body." .. i, "rb")
    local raw = bf and bf:read("a") or ""
    if bf then
      bf:close()
    end
    local ok, decoded = pcall(cjson.decode, raw)
    out[i] = { status = code, body = ok and decoded or nil, raw = raw }
  end
  os.execute("rm -rf " .. h.shell_quote(dir))
  return out
end

return M
