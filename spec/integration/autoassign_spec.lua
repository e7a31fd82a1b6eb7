-- The sample plugin plugins/autoassign on a server of this spec's own (one
-- worker, the suite's database, PLUGINS unset so the PLUGINS_CONFIG file
-- decides what is enabled): its amend hook's change is in the 201 answer,
-- in the task:created event a realtime client hears and in the activity
-- trail, as version 2; its custom counter and the hook-failure counter are
-- on /metrics; a settings change (another assignee, the plugin switched
-- off) applies at the next reload without a restart; a broken settings
-- file is refused and the old generation serves on.
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"
local ws = require "spec.integration.support.rawws"
local cjson = require "cjson"

describe("the autoassign plugin", function()
  local root, scripts, plugins_dir, config, own, api, owner, bob, carol, project
  -- The suite's database: its servers do not enable autoassign, so their job
  -- runners never claim the plugin's autoassign.record jobs (a runner claims
  -- only the kinds it handles); this server's runs them.
  local sql = h.psql
  local generation = 1

  local function set_settings(t)
    -- written then renamed, as an operator deploying by copy should
    local tmp = config .. ".tmp"
    E.write_file(tmp, type(t) == "string" and t or cjson.encode(t))
    assert(os.rename(tmp, config))
  end

  -- SIGHUP; waits for the next generation (or the refusal) in the log.
  local function reload()
    own:signal("HUP")
    generation = generation + 1
    return own:wait_log("reloaded: generation " .. generation)
  end

  local function metric(line_pattern)
    local res = h.call("GET", own.url .. "/metrics")
    assert.are.equal(200, res.status)
    return tonumber(res.raw:match("\n" .. line_pattern .. " ([%d.e+]+)\n")) or 0
  end

  local function assigned(to)
    return metric('autoassign_assignments_total{to="' .. to .. '"}')
  end

  local function hook_failures()
    return metric('taskapi_plugin_hook_failures_total{plugin="autoassign",hook="amend:task.created"}')
  end

  -- A global admin's access token (for GET /api/v1/admin/status).
  local function admin_token()
    local email, pw = h.unique_email("autoadmin"), h.unique_password()
    h.expect_status(api.call("POST", "/auth/register", nil,
      { email = email, password = pw, name = "Admin" }), 201)
    local ok, out = E.run(("env DATABASE_URL=%s %s users grant-admin %s"):format(
      E.quote(os.getenv("DATABASE_URL")), E.quote(E.bin()), E.quote(email)))
    assert(ok, out)
    return h.expect_status(api.call("POST", "/auth/login", nil, { email = email, password = pw }),
      200).data.accessToken
  end

  -- A native realtime socket of `user` joined to the project's room.
  local function subscriber(user)
    local c = assert(ws.connect(tonumber(own.full_env.WS_PORT)))
    assert.are.equal(101, (ws.handshake(c, "/ws?token=" .. user.access)))
    local op, payload = ws.read_frame(c, 10)
    assert.are.equal(0x1, op, payload)
    assert.are.equal("ready", cjson.decode(payload).type)
    c:send(ws.frame(0x1, cjson.encode({ type = "join", room = "project:" .. project })))
    op, payload = ws.read_frame(c, 10)
    assert.are.equal(0x1, op, payload)
    assert.are.equal("joined", cjson.decode(payload).type, payload)
    return c
  end

  -- The next event `name` the socket hears about task `id`.
  local function event(c, name, id)
    for _ = 1, 20 do
      local op, payload = ws.read_frame(c, 10)
      assert.are.equal(0x1, op, payload)
      local m = cjson.decode(payload)
      if m.type == "event" and m.event == name and m.data.task and m.data.task.id == id then
        return m.data
      end
    end
    error("no " .. name .. " event for task " .. id)
  end

  setup(function()
    root, scripts, plugins_dir = E.trees()
    config = root .. "/plugins.json"
    set_settings({ autoassign = {}, activity = {} })
    -- two workers: the counters must add up over both VMs
    own = E.server({ SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir, PLUGINS_CONFIG = config,
      WORKERS = "2" })
    api = E.api(own.url)
    owner, bob, carol = api.user("Owner"), api.user("Bob"), api.user("Carol (no member)")
    project = api.project(owner, { { bob, "member" } })
  end)

  teardown(function()
    if own then
      own:stop()
    end
    E.cleanup()
  end)

  it("assigns a new task to the project owner: the 201 answer, the task:created event, "
    .. "a later read and the activity trail all show version 2, assigned", function()
    local before = assigned("owner")
    local sock = subscriber(owner)
    local res = api.call("POST", "/projects/" .. project .. "/tasks", bob.access,
      { title = "assign me" })
    local task = h.expect_status(res, 201).data
    assert.are.equal(owner.id, task.assigneeId)
    assert.are.equal(2, task.version)
    assert.are.equal('"2"', res.headers["etag"])
    local ev = event(sock, "task:created", task.id)
    sock:close()
    assert.are.equal(owner.id, ev.task.assigneeId)
    assert.are.equal(2, ev.task.version)
    assert.are.same(task, ev.task)
    local read = h.expect_status(api.call("GET", "/tasks/" .. task.id, bob.access), 200).data
    assert.are.same(task, read)
    local trail = h.expect_status(api.call("GET", "/projects/" .. project
      .. "/activity?action=task.created&entityId=" .. task.id, owner.access), 200).data
    assert.are.equal(1, #trail)
    assert.are.equal(owner.id, trail[1].detail.assigneeId)
    assert.are.equal(before + 1, assigned("owner"))
  end)

  -- The row the plugin's job handler writes for task `id` ("assignee|rule"),
  -- waited for: the job runs after the commit, in the runner.
  local function logged(id)
    local q = "SELECT assignee_id || '|' || rule FROM autoassign_log WHERE task_id = '" .. id .. "'"
    return E.wait_for(20, function()
      local row = sql(q)
      return row ~= "" and row or nil
    end)
  end

  it("keeps its own data: its migration is applied once and tracked as the plugin's, and the "
    .. "job each assignment queues writes the plugin's table", function()
    assert.are.equal("1", sql("SELECT count(*) FROM schema_migrations "
      .. "WHERE plugin = 'autoassign' AND version = 1"))
    assert.are.equal("0", sql("SELECT count(*) FROM schema_migrations "
      .. "WHERE plugin = '' AND name LIKE '%autoassign%'"))
    local task = api.task(bob, project, { title = "recorded" })
    assert.are.equal(owner.id, task.assigneeId)
    assert.are.equal(owner.id .. "|owner", logged(task.id))
    -- one job, settled as done (right after its write, so waited for too)
    local q = "SELECT string_agg(status || '/' || attempts, ',') FROM jobs "
      .. "WHERE kind = 'autoassign.record' AND payload ->> 'taskId' = '" .. task.id .. "'"
    local state = E.wait_for(20, function()
      local st = sql(q)
      return st ~= "pending/1" and st or nil
    end)
    assert.are.equal("done/1", state)
  end)

  it("leaves a task the client assigned alone (version 1, nothing counted)", function()
    local before = assigned("owner")
    local task = api.task(bob, project, { title = "mine", assigneeId = bob.id })
    assert.are.equal(bob.id, task.assigneeId)
    assert.are.equal(1, task.version)
    assert.are.equal(before, assigned("owner"))
  end)

  it("applies changed settings at the next reload, without a restart", function()
    local pid = own.pid
    local before = assigned("configured")
    set_settings({ autoassign = { assignee = bob.id }, activity = {} })
    assert.is_truthy(reload(), "no reload in the log")
    local task = api.task(owner, project, { title = "for bob" })
    assert.are.equal(bob.id, task.assigneeId)
    assert.are.equal(2, task.version)
    assert.are.equal(before + 1, assigned("configured"))
    assert.are.equal(pid, own.pid)
  end)

  it("a configured assignee who is not a member is refused like a client's change: the task "
    .. "stays unassigned, the failure is logged and counted", function()
    local failures, configured = hook_failures(), assigned("configured")
    set_settings({ autoassign = { assignee = carol.id }, activity = {} })
    assert.is_truthy(reload(), "no reload in the log")
    local task = api.task(owner, project, { title = "nobody's" })
    assert.are.equal(cjson.null, task.assigneeId)
    assert.are.equal(1, task.version)
    assert.are.equal(failures + 1, hook_failures())
    assert.are.equal(configured, assigned("configured"))
    -- the refused change's job was rolled back with it
    assert.are.equal("0", sql("SELECT count(*) FROM jobs WHERE kind = 'autoassign.record' "
      .. "AND payload ->> 'taskId' = '" .. task.id .. "'"))
    -- taskapi status shows the same count as /metrics
    local st = h.expect_status(api.call("GET", "/admin/status", admin_token()), 200).data
    assert.are.equal(failures + 1, st.hookFailures.byHook.autoassign["amend:task.created"])
    assert.are.equal(failures + 1, st.hookFailures.byPlugin.autoassign)
    assert.is_truthy(own:wait_log("plugin autoassign: amend:task.created hook failed[^\n]*"
      .. "assigneeId must be a member of the project"))
  end)

  it("refuses a reload with a broken settings file, naming it; the old settings serve on",
    function()
      set_settings({ autoassign = { assignee = bob.id }, activity = {} })
      assert.is_truthy(reload(), "no reload in the log")
      set_settings('{"autoassign": {"assignee": "' .. bob.id .. '"},\n "activity": {\n')
      own:signal("HUP")
      local line = own:wait_log("reload failed; still serving generation " .. generation
        .. ": [^\n]*")
      assert.is_truthy(line, "no reload failure in the log")
      assert.is_truthy(line:find(config .. ":", 1, true), line)
      assert.matches("PLUGINS_CONFIG is not valid JSON", line)
      assert.are.equal(bob.id, api.task(owner, project, { title = "still bob" }).assigneeId)

      -- settings the plugin's schema refuses: the field is named
      set_settings({ autoassign = { assignee = "not-a-user-id" }, activity = {} })
      own:signal("HUP")
      assert.is_truthy(own:wait_log("reload failed; still serving generation " .. generation
        .. ": [^\n]*invalid settings for plugin 'autoassign'[^\n]*assignee"))
      assert.are.equal(bob.id, api.task(owner, project, { title = "bob again" }).assigneeId)
    end)

  it("counts over every worker: one assignment per task, whichever VM served it", function()
    local before = assigned("configured")
    for i = 1, 6 do
      assert.are.equal(bob.id, api.task(owner, project, { title = "spread " .. i }).assigneeId)
    end
    assert.are.equal(before + 6, assigned("configured"))
  end)

  it("refuses a reload that declares a metric again with other labels, naming it", function()
    local file = plugins_dir .. "/autoassign/init.lua"
    local good = E.read_file(file)
    local changed = good:gsub('{ "to" }', '{ "to", "project" }', 1)
    assert.are_not.equal(good, changed)
    E.write_file(file, changed)
    own:signal("HUP")
    local line = own:wait_log("reload failed; still serving generation " .. generation
      .. ": [^\n]*autoassign_assignments_total[^\n]*")
    E.write_file(file, good)
    assert.is_truthy(line, "no reload failure in the log")
    assert.matches("already declared as a counter with labels {to}", line, 1, true)
    assert.is_truthy(line:find(file, 1, true), line)
    assert.are.equal(bob.id, api.task(owner, project, { title = "bob still" }).assigneeId)
  end)

  it("is switched off by the settings file at a reload (PLUGINS unset)", function()
    set_settings({ autoassign = false, activity = {} })
    assert.is_truthy(reload(), "no reload in the log")
    local task = api.task(owner, project, { title = "left alone" })
    assert.are.equal(cjson.null, task.assigneeId)
    assert.are.equal(1, task.version)
    -- the counter outlives the plugin's generation: still exported
    assert.is_true(assigned("owner") >= 1)
  end)

  it("the server stops cleanly with no sanitizer reports", function()
    local reports = own:stop()
    own = nil
    assert.are.equal("", reports)
  end)
end)
