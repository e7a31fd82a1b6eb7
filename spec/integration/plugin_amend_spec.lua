-- Amend hooks (lib.plugins.amend) on a server of this spec's own, through
-- the test plugin spec/fixtures/plugins/amender: a change to a PATCHed task
-- is in the 200 answer, its ETag and the task:updated event (changes
-- against the task before the request); a change the route refuses leaves
-- the task as the client made it, is counted, and the event the failed
-- hook had published is never delivered; a hook that raises an HTTP error
-- refuses the whole write.
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"
local ws = require "spec.integration.support.rawws"
local cjson = require "cjson"

describe("amend hooks", function()
  local root, scripts, plugins_dir, own, api, owner, project, sock

  local function failures()
    local res = h.call("GET", own.url .. "/metrics")
    assert.are.equal(200, res.status)
    return tonumber(res.raw:match(
      '\ntaskapi_plugin_hook_failures_total{plugin="amender",hook="amend:task.created"} (%d+)\n')) or 0
  end

  -- Every event the socket hears until (and with) `name` about task `id`.
  local function events_until(name, id)
    local seen = {}
    for _ = 1, 50 do
      local op, payload = ws.read_frame(sock, 10)
      assert.are.equal(0x1, op, payload)
      local m = cjson.decode(payload)
      if m.type == "event" then
        seen[#seen + 1] = m
        if m.event == name and m.data.task and m.data.task.id == id then
          return seen
        end
      end
    end
    error("no " .. name .. " event for task " .. id)
  end

  setup(function()
    root, scripts, plugins_dir = E.trees()
    local config = root .. "/plugins.json"
    E.write_file(config, cjson.encode({ amender = {} }))
    own = E.server({ SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir, PLUGINS_CONFIG = config })
    api = E.api(own.url)
    owner = api.user("Amend Owner")
    project = api.project(owner)
    sock = assert(ws.connect(tonumber(own.full_env.WS_PORT)))
    assert.are.equal(101, (ws.handshake(sock, "/ws?token=" .. owner.access)))
    assert.are.equal("ready", cjson.decode(select(2, ws.read_frame(sock, 10))).type)
    sock:send(ws.frame(0x1, cjson.encode({ type = "join", room = "project:" .. project })))
    assert.are.equal("joined", cjson.decode(select(2, ws.read_frame(sock, 10))).type)
  end)

  teardown(function()
    if sock then
      sock:close()
    end
    if own then
      own:stop()
    end
    E.cleanup()
  end)

  it("a hook's change to a PATCHed task is in the answer, its ETag and the task:updated event",
    function()
      local task = api.task(owner, project, { title = "to finish", priority = "high" })
      assert.are.equal(1, task.version)
      events_until("task:created", task.id)
      local res = api.call("PATCH", "/tasks/" .. task.id, owner.access, { status = "done" })
      local after = h.expect_status(res, 200).data
      assert.are.equal("done", after.status)
      assert.are.equal("low", after.priority)
      assert.are.equal(3, after.version)
      assert.are.equal('"3"', res.headers["etag"])
      local seen = events_until("task:updated", task.id)
      local ev = seen[#seen].data
      assert.are.same(after, ev.task)
      assert.are.same({ "status", "priority", "completedAt" }, ev.changes)
      assert.are.same(after, h.expect_status(api.call("GET", "/tasks/" .. task.id, owner.access),
        200).data)
    end)

  it("a change the route refuses is rolled back alone and counted; the event the hook published "
    .. "is never delivered", function()
    local before = failures()
    local bad = api.task(owner, project, { title = "bad change" })
    assert.are.equal("medium", bad.priority)
    assert.are.equal(1, bad.version)
    local odd = api.task(owner, project, { title = "unknown field" })
    assert.are.equal(1, odd.version)
    assert.are.equal(before + 2, failures())
    -- events of one project arrive in commit order: the dropped one would
    -- have come before the first task:created
    local seen = events_until("task:created", odd.id)
    for _, m in ipairs(seen) do
      assert.are_not.equal("task:updated", m.event, cjson.encode(m))
    end
    assert.is_truthy(own:wait_log("plugin amender: amend:task.created hook failed[^\n]*"
      .. "priority must be one of"))
  end)

  it("a hook that raises an HTTP error refuses the whole write: 422, nothing stored", function()
    local count = #h.expect_status(api.call("GET", "/projects/" .. project .. "/tasks?limit=100",
      owner.access), 200).data
    local res = api.call("POST", "/projects/" .. project .. "/tasks", owner.access,
      { title = "veto me" })
    h.expect_error(res, 422, "validation_failed")
    assert.are.equal("title", res.body.error.details[1].field)
    assert.are.equal("refused by the amender plugin", res.body.error.details[1].message)
    assert.are.equal(count, #h.expect_status(api.call("GET", "/projects/" .. project
      .. "/tasks?limit=100", owner.access), 200).data)
  end)

  it("the server stops cleanly with no sanitizer reports", function()
    sock:close()
    sock = nil
    local reports = own:stop()
    own = nil
    assert.are.equal("", reports)
  end)
end)
