-- The plugin machinery (scripts/lib/plugins.lua) on a server of this spec's
-- own (TASKAPI_BIN, one worker, the suite's database) that runs the bundled
-- plugins plus the test plugins of spec/fixtures/plugins: request-phase
-- hooks in priority order and able to answer for a route, domain hooks in
-- the change's transaction, a broken plugin's errors isolated (rolled back
-- to their savepoint, logged, counted, the request goes on), settings
-- validated at load so `taskapi check` and a reload fail with file:line,
-- and the webhooks plugin refusing private addresses unless allowed.
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"
local cjson = require "cjson"

local ENABLED = "activity,webhooks,a_low,z_high,broken"

describe("plugins", function()
  local root, scripts, plugins_dir, config, own, api, owner

  local function settings(t)
    local path = root .. "/settings-" .. math.random(1, 1e9) .. ".json"
    E.write_file(path, type(t) == "string" and t or cjson.encode(t))
    return path
  end

  local function trace(of)
    local q = of and "?of=" .. of or ""
    return h.expect_status(h.call("GET", own.url .. "/api/v1/__plugins/trace" .. q), 200).data
  end

  local function failures()
    return h.expect_status(h.call("GET", own.url .. "/api/v1/__plugins/failures"), 200).data
  end

  local function broken_failures()
    return failures().by_plugin.broken or 0
  end

  setup(function()
    root, scripts, plugins_dir = E.trees()
    config = settings({
      activity = {},
      webhooks = { allow_private_urls = false },
      a_low = { label = "a_low" },
      z_high = {},
      broken = {},
    })
    own = E.server({ SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir, PLUGINS = ENABLED,
      PLUGINS_CONFIG = config })
    api = E.api(own.url)
    owner = api.user("Plugin Owner")
  end)

  teardown(function()
    if own then
      own:stop()
    end
    E.cleanup()
  end)

  describe("request phases", function()
    it("run `before` hooks in priority order (z_high 300, a_low 10), not name order", function()
      assert.are.same({ "z_high", "a_low" }, trace().before)
    end)

    it("run `after` hooks in priority order with the answer's status", function()
      h.expect_status(api.call("GET", "/auth/me", owner.access, nil, { ["X-Trace-Id"] = "ok-1" }),
        200)
      h.expect_error(api.call("GET", "/projects/00000000-0000-4000-8000-000000000000", owner.access,
        nil, { ["X-Trace-Id"] = "nf-1" }), 404, "not_found")
      local ok, nf = trace("ok-1").after, trace("nf-1").after
      assert.are.same({ "z_high", "a_low" }, { ok[1].plugin, ok[2].plugin })
      assert.are.same({ 200, 200 }, { ok[1].status, ok[2].status })
      assert.are.same({ 404, 404 }, { nf[1].status, nf[2].status })
    end)

    it("a `before` hook may answer for the route: 403, the handler and later hooks never run",
      function()
        local res = api.call("POST", "/projects", owner.access, { name = "never made" },
          { ["X-Plugin-Deny"] = "1", ["X-Trace-Id"] = "deny-1" })
        h.expect_error(res, 403, "forbidden")
        assert.matches("denied by plugin z_high", res.body.error.message)
        local list = h.expect_status(api.call("GET", "/projects?q=never%20made", owner.access), 200)
        assert.are.equal(0, #list.data)
        local after = trace("deny-1").after
        assert.are.same({ 403, 403 }, { after[1].status, after[2].status })
        assert.are.same({ "z_high" }, after[2].before) -- a_low's before hook did not run
      end)

    it("an error in a `before` or `after` hook is logged and counted; the request goes on",
      function()
        local n = broken_failures()
        h.expect_status(api.call("GET", "/auth/me", owner.access, nil, { ["X-Break-Before"] = "1" }),
          200)
        h.expect_status(api.call("GET", "/auth/me", owner.access, nil, { ["X-Break-After"] = "1" }),
          200)
        assert.are.equal(n + 2, broken_failures())
        assert.is_truthy(own:wait_log("plugin broken: before hook failed[^\n]*before hook fails"))
        assert.is_truthy(own:wait_log("plugin broken: after hook failed[^\n]*after hook fails"))
      end)
  end)

  describe("domain hooks", function()
    it("run in the change's transaction in priority order, with the actor and project", function()
      local p = api.project(owner)
      local before = #trace().events
      local task = api.task(owner, p, { title = "traced" })
      local events = trace().events
      assert.are.equal(before + 2, #events)
      local high, low = events[before + 1], events[before + 2]
      assert.are.same({ "z_high", "a_low" }, { high.plugin, low.plugin })
      assert.are.equal("task.created", high.event)
      assert.are.equal(p, high.projectId)
      assert.are.equal(owner.id, high.actorId)
      assert.is_string(task.id)
    end)

    it("a hook that raises after writing is rolled back alone: the request still 201s, the "
      .. "other plugins' writes commit, the failure is logged and counted", function()
      local p = api.project(owner)
      local n = broken_failures()
      local task = api.task(owner, p, { title = "survives a broken plugin" })
      assert.are.equal("0", h.psql("SELECT count(*) FROM activity WHERE action = 'broken.hook' AND "
        .. "project_id = " .. h.sql_literal(p)))
      assert.are.equal("1", h.psql("SELECT count(*) FROM activity WHERE action = 'task.created' AND "
        .. "entity_id = " .. h.sql_literal(task.id)))
      assert.are.equal("1", h.psql("SELECT count(*) FROM tasks WHERE id = " .. h.sql_literal(task.id)))
      assert.are.equal(n + 1, broken_failures())
      assert.is_truthy(own:wait_log("plugin broken: task.created hook failed[^\n]*boom after a write"))
    end)

    it("a hook that leaves the transaction aborted is rolled back to its savepoint; the comment "
      .. "is still made", function()
      local p = api.project(owner)
      local task = api.task(owner, p)
      local n = broken_failures()
      local c = h.expect_status(api.call("POST", "/tasks/" .. task.id .. "/comments", owner.access,
        { content = "still here" }), 201).data
      assert.are.equal("still here", h.psql("SELECT content FROM comments WHERE id = "
        .. h.sql_literal(c.id)))
      assert.are.equal("1", h.psql("SELECT count(*) FROM activity WHERE action = 'comment.created' "
        .. "AND entity_id = " .. h.sql_literal(c.id)))
      assert.are.equal(n + 1, broken_failures())
      assert.is_truthy(own:wait_log("plugin broken: comment.created hook failed[^\n]*aborted"))
    end)
  end)

  describe("the webhooks plugin without allow_private_urls", function()
    it("refuses loopback and private URLs with 422, accepts public ones", function()
      local p = api.project(owner)
      for _, url in ipairs({ "http://127.0.0.1:8080/x", "http://localhost/x", "http://10.1.2.3/x",
        "http://192.168.0.10/x", "http://[::1]:8080/x", "http://api.localhost/x" }) do
        h.expect_validation(api.call("POST", "/projects/" .. p .. "/webhooks", owner.access,
          { url = url }), { "url" })
      end
      h.expect_status(api.call("POST", "/projects/" .. p .. "/webhooks", owner.access,
        { url = "https://hooks.example.com/taskapi", active = false }), 201)
    end)

    it("the job runner refuses a private address even when one got into the table", function()
      local recv = E.receiver()
      local p = api.project(owner)
      local url, path = recv:url()
      local id = h.psql(("INSERT INTO webhooks (project_id, url, secret) VALUES (%s, %s, "
        .. "'a-secret-of-sixteen-chars') RETURNING id"):format(h.sql_literal(p), h.sql_literal(url)))
        :match("%S+")
      api.task(owner, p)
      local err = E.wait_for(10, function()
        -- the first attempt's (a refused attempt is retried after JOB_BACKOFF_BASE_MS,
        -- so a loaded machine may already have recorded a second one)
        local e = h.psql("SELECT error FROM webhook_deliveries WHERE webhook_id = " .. h.sql_literal(id)
          .. " ORDER BY attempt LIMIT 1")
        return e ~= "" and e or nil
      end)
      recv:stop()
      assert.are.equal("address not allowed (loopback or private network)", err)
      assert.are.equal(0, #recv:arrivals(path))
    end)
  end)

  describe("loading", function()
    local function check(env)
      local full = { SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir }
      for k, v in pairs(env) do
        full[k] = v
      end
      return E.taskapi("check", full)
    end

    it("`taskapi check` passes with the plugins and their settings", function()
      local ok, out = check({ PLUGINS = ENABLED, PLUGINS_CONFIG = config })
      assert.is_true(ok, out)
      assert.matches("^ok: ", out)
    end)

    it("invalid settings fail `taskapi check` with the settings file:line and the field", function()
      local path = settings('{\n  "webhooks": {\n    "max_attempts": "many"\n  }\n}\n')
      local ok, out = check({ PLUGINS = "webhooks", PLUGINS_CONFIG = path })
      assert.is_false(ok)
      assert.is_truthy(out:find(path .. ":3: invalid settings for plugin 'webhooks'", 1, true), out)
      assert.is_truthy(out:find("max_attempts must be an integer", 1, true), out)
      local unknown = settings('{"activity": {"exclude": ["task.created"], "colour": 1}}')
      ok, out = check({ PLUGINS = "activity", PLUGINS_CONFIG = unknown })
      assert.is_false(ok)
      assert.is_truthy(out:find("colour is not allowed", 1, true), out)
    end)

    it("a settings file that is not JSON fails with its file:line", function()
      local path = settings('{\n  "activity": {\n  },,\n}\n')
      local ok, out = check({ PLUGINS_CONFIG = path })
      assert.is_false(ok)
      assert.is_truthy(out:find(path .. ":3: PLUGINS_CONFIG is not valid JSON", 1, true), out)
    end)

    it("a plugin with a syntax error fails with its file:line; a missing one is named", function()
      local dir = E.tmpdir("badplugins")
      os.execute("mkdir -p " .. E.quote(dir .. "/syntax"))
      E.write_file(dir .. "/syntax/init.lua", "return {\n  name = 'syntax',\n  version = = 1,\n}\n")
      local ok, out = check({ PLUGINS_DIR = dir, PLUGINS = "syntax" })
      assert.is_false(ok)
      assert.is_truthy(out:find(dir .. "/syntax/init.lua:3:", 1, true), out)
      ok, out = check({ PLUGINS_DIR = dir, PLUGINS = "nowhere" })
      assert.is_false(ok)
      assert.is_truthy(out:find("plugin 'nowhere' is enabled but " .. dir .. "/nowhere/init.lua "
        .. "does not exist", 1, true), out)
    end)

    it("a bad manifest fails with the plugin's file", function()
      local dir = E.tmpdir("badplugins")
      local cases = {
        { "priority = 'high'", "priority must be an integer" },
        { "priority = 1, hooks = { ['task.exploded'] = function() end }", "hooks.task.exploded" },
        { "priority = 1, schema = { type = 'object', properties = { x = { type = 'strng' } } }",
          "schema" },
        { "priority = 1, colour = 'red'", "unknown field 'colour'" },
      }
      for i, case in ipairs(cases) do
        local name = "bad" .. i
        os.execute("mkdir -p " .. E.quote(dir .. "/" .. name))
        E.write_file(dir .. "/" .. name .. "/init.lua", ("return { name = %q, version = '1.0.0', %s }\n")
          :format(name, case[1]))
        local ok, out = check({ PLUGINS_DIR = dir, PLUGINS = name })
        assert.is_false(ok, case[1])
        assert.is_truthy(out:find(dir .. "/" .. name .. "/init.lua: plugin manifest:", 1, true), out)
        assert.is_truthy(out:find(case[2], 1, true), out)
      end
    end)

    it("PLUGINS that is not a list of names stops start-up naming the variable", function()
      local ok, out = check({ PLUGINS = "webhooks,,activity" })
      assert.is_false(ok)
      assert.matches("PLUGINS must be a comma list", out)
      ok, out = check({ PLUGINS_CONFIG = root .. "/no-such-file.json" })
      assert.is_false(ok)
      assert.matches("PLUGINS_CONFIG: cannot read", out)
    end)

    it("a reload with a broken plugin fails with file:line and the running generation serves on",
      function()
        local file = plugins_dir .. "/a_low/init.lua"
        local good = E.read_file(file)
        E.write_file(file, good .. "\nthis is not lua\n")
        own:signal("HUP")
        local line = own:wait_log("reload failed; still serving generation %d+: [^\n]*")
        E.write_file(file, good)
        assert.is_truthy(line, "no reload failure in the log")
        assert.is_truthy(line:find(file .. ":", 1, true), line)
        assert.are.same({ "z_high", "a_low" }, trace().before)
        own:signal("HUP")
        assert.is_truthy(own:wait_log("reloaded: generation 2"))
        assert.are.same({ "z_high", "a_low" }, trace().before)
      end)
  end)

  it("the server stops cleanly with no sanitizer reports", function()
    local reports = own:stop()
    own = nil
    assert.are.equal("", reports)
  end)
end)
