-- The notification policy's declared types (scripts/policies/notifications.lua
-- M.types, checked by lib.notify): a type declared in Lua is stored without a
-- migration; a rule that emits an undeclared type, or raises, is logged
-- naming the policy and left out while the change it reports is stored and
-- answered 200; a bad declaration fails `taskapi check` and a reload.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.rel_server"
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"

local POLICY_TAIL = [[

-- Added by spec/integration/notify_policy_spec.lua.
M.types[#M.types + 1] = "task_renamed"
local updated = M.rules["task.updated"]
M.rules["task.updated"] = function(ev)
  local out = updated(ev)
  for _, c in ipairs(ev.changes) do
    if c == "title" then
      out[#out + 1] = { user = ev.task.createdBy, type = "task_renamed", data = { taskId = ev.task.id } }
    elseif c == "priority" then
      out[#out + 1] = { user = ev.task.createdBy, type = "task_exploded", data = {} }
    end
  end
  return out
end
M.rules["comment.created"] = function(ev)
  return ev.no_such_field.boom -- a bug in the policy
end
]]

local function call(srv, method, path, body, token)
  local chunks, payload = {}, body and cjson.encode(body) or nil
  local headers = { ["content-type"] = payload and "application/json" or nil,
    ["content-length"] = payload and tostring(#payload) or nil,
    authorization = token and ("Bearer " .. token) or nil }
  local _, status = http.request({ url = srv.url .. "/api/v1" .. path, method = method,
    headers = headers, source = payload and ltn12.source.string(payload) or nil,
    sink = ltn12.sink.table(chunks) })
  local raw = table.concat(chunks)
  local ok, decoded = pcall(cjson.decode, raw)
  return { status = status, body = ok and decoded or nil, raw = raw }
end

describe("notification policy types", function()
  local srv, token, task_id

  setup(function()
    srv = server.start({
      before = function(scripts)
        local path = scripts .. "/policies/notifications.lua"
        local text = server.read(path)
        local patched = text:gsub("\nreturn M%s*$", POLICY_TAIL .. "\nreturn M\n")
        assert(patched ~= text, "the policy no longer ends with 'return M'")
        server.write(path, patched)
      end,
    })
    local email, password = h.unique_email("np"), h.unique_password()
    h.expect_status(call(srv, "POST", "/auth/register", { email = email, password = password, name = "N" }), 201)
    token = h.expect_status(call(srv, "POST", "/auth/login", { email = email, password = password }), 200)
      .data.accessToken
    local project = h.expect_status(call(srv, "POST", "/projects", { name = "np" }, token), 201).data
    task_id = h.expect_status(call(srv, "POST", "/tasks", { projectId = project.id, title = "t" }, token), 201)
      .data.id
  end)

  teardown(function()
    if srv then
      srv:stop(30)
      srv:cleanup()
    end
  end)

  it("stores a type declared in Lua, with no migration", function()
    h.expect_status(call(srv, "PATCH", "/tasks/" .. task_id, { title = "renamed" }, token), 200)
    local list = h.expect_status(call(srv, "GET", "/notifications", nil, token), 200).data
    assert.are.equal(1, #list)
    assert.are.equal("task_renamed", list[1].type)
    assert.are.equal(task_id, list[1].data.taskId)
  end)

  it("leaves out an undeclared type, names the policy, and still stores the change", function()
    local t = h.expect_status(call(srv, "PATCH", "/tasks/" .. task_id, { priority = "urgent" }, token), 200).data
    assert.are.equal("urgent", t.priority)
    local now = h.expect_status(call(srv, "GET", "/tasks/" .. task_id, nil, token), 200).data
    assert.are.equal("urgent", now.priority)
    assert.truthy(srv:log():find("policies/notifications.lua: the rule for task.updated emitted type "
      .. "'task_exploded', which M.types does not declare", 1, true), srv:log():sub(-2000))
    for _, n in ipairs(h.expect_status(call(srv, "GET", "/notifications", nil, token), 200).data) do
      assert.are_not.equal("task_exploded", n.type)
    end
  end)

  it("logs a rule that raises with the policy's file and line, and answers the comment 201", function()
    h.expect_status(call(srv, "POST", "/tasks/" .. task_id .. "/comments", { content = "hi" }, token), 201)
    local comments = h.expect_status(call(srv, "GET", "/tasks/" .. task_id .. "/comments", nil, token), 200).data
    assert.are.equal(1, #comments)
    local line = srv:log():match("[^\n]*the rule for comment%.created failed[^\n]*")
    assert.truthy(line, srv:log():sub(-2000))
    assert.truthy(line:find("(its notifications are skipped): " .. srv.scripts
      .. "/policies/notifications.lua:", 1, true), line)
    assert.truthy(line:find("notifications%.lua:%d+: attempt to index"), line)
  end)

  it("refuses a bad declaration in taskapi check and in a reload", function()
    local path = srv.scripts .. "/policies/notifications.lua"
    local text = server.read(path)
    server.replace(path, (text:gsub('M.types%[#M.types %+ 1%] = "task_renamed"',
      'M.types[#M.types + 1] = "Task Renamed"')))
    local ok, _, out = srv:cli("check")
    assert.is_false(ok, out)
    assert.truthy(out:find("policies/notifications.lua: M.types[5] must be a name", 1, true), out)
    local want = "policies/notifications.lua: M.types[5] must be a name"
    local deadline = socket.gettime() + 30
    local log = srv:log()
    while socket.gettime() < deadline and not (log:find("reload failed", 1, true) and log:find(want, 1, true)) do
      socket.sleep(0.05)
      log = srv:log()
    end
    assert.truthy(log:find("reload failed", 1, true) and log:find(want, 1, true), log:sub(-2000))
    -- the running generation still serves
    h.expect_status(call(srv, "GET", "/tasks/" .. task_id, nil, token), 200)
  end)
end)
