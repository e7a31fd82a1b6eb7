-- Unit specs for scripts/lib/plugins.lua: which plugins are enabled (PLUGINS
-- or the settings file's keys), manifest and settings checks that fail the
-- load with the file named, run order by priority, domain hooks each in a
-- savepoint (released on success, rolled back on failure, counted), and
-- request-phase hooks (before may answer with an HTTP error; other errors
-- are isolated). The tk.* modules are stand-ins that record their calls.
-- luacheck: std lua54+busted

local settings = {}   -- what runtime.plugin_settings() answers
local dirs = {}       -- what runtime.list_dirs("plugins") answers
local queries = {}    -- SQL sent through tk.db.query
local fail_sql = {}   -- sql -> true: tk.db.query answers nil, msg for it
local logged = {}
local in_tx = true
local pending = 0     -- after-commit callbacks queued (tk.db.after_commit_mark)
local counted = {}    -- "plugin/hook" -> n (tk.metrics.hook_failure)

package.preload["tk.db"] = function()
  return {
    in_tx = function() return in_tx end,
    after_commit_mark = function() return pending end,
    after_commit_drop = function(n) pending = n end,
    query = function(sql)
      queries[#queries + 1] = sql
      if fail_sql[sql] then
        return nil, "current transaction is aborted", "25P02"
      end
      return {}, 0
    end,
  }
end

package.preload["tk.metrics"] = function()
  return {
    hook_failure = function(plugin, hook)
      local k = plugin .. "/" .. hook
      counted[k] = (counted[k] or 0) + 1
    end,
  }
end

package.preload["tk.log"] = function()
  local function rec(level)
    return function(fmt, ...)
      logged[#logged + 1] = { level = level, msg = fmt:format(...) }
    end
  end
  return { debug = rec("debug"), info = rec("info"), warn = rec("warn"), error = rec("error") }
end

package.preload["tk.runtime"] = function()
  return {
    plugin_settings = function() return settings end,
    list_dirs = function() return dirs end,
    request_id = function() return "req-1" end,
    now_ms = function() return 1767225600123 end,
    traceback = function(msg) return tostring(msg) .. "\n(traceback)" end,
    fenced = pcall, -- the budget share is the C runtime's (plugin_budget_spec proves it)
    array_mt = { __name = "json.array" },
  }
end

local plugins = require "lib.plugins"
local errors = require "lib.errors"

local calls -- order in which hooks ran: "name:hook"

-- Registers plugin `name` (a manifest; defaults filled in) for require.
local function define(name, m)
  m.name = m.name == nil and name or m.name
  m.version = m.version or "1.0.0"
  m.priority = m.priority or 0
  package.loaded["plugins." .. name] = nil
  package.preload["plugins." .. name] = function() return m end
  return m
end

local function recorder(name, hook, extra)
  return function(...)
    calls[#calls + 1] = name .. ":" .. hook
    if extra then
      return extra(...)
    end
  end
end

local function setup_plugins(list, config)
  settings = { list = list, config = config, config_path = "/etc/plugins.json", dir = "/srv/plugins" }
end

before_each(function()
  calls, queries, logged, fail_sql, in_tx, pending, counted = {}, {}, {}, {}, true, 0, {}
  dirs = { "alpha", "beta", "gamma" }
  settings = {}
end)

describe("plugins.load: what is enabled", function()
  it("loads nothing when neither PLUGINS nor a settings file is given", function()
    assert.same({}, plugins.load())
    assert.same({}, plugins.list())
  end)

  it("takes PLUGINS when set, else the settings file's keys (false: disabled)", function()
    define("alpha", {})
    define("beta", {})
    setup_plugins("beta", '{"alpha": {}}')
    plugins.load()
    assert.same({ "beta" }, { plugins.list()[1].name })
    setup_plugins(nil, '{"alpha": {}, "beta": false}')
    plugins.load()
    local l = plugins.list()
    assert.equal(1, #l)
    assert.equal("alpha", l[1].name)
  end)

  it("fails for a plugin that is not in PLUGINS_DIR, naming the file", function()
    setup_plugins("delta")
    local ok, err = pcall(plugins.load)
    assert.is_false(ok)
    assert.matches("plugin 'delta' is enabled but /srv/plugins/delta/init.lua does not exist", err, 1,
      true)
  end)

  it("fails for a bad name or a name listed twice in PLUGINS", function()
    setup_plugins("alpha,alpha")
    assert.has_error(plugins.load, "PLUGINS: 'alpha' is listed twice")
    setup_plugins("Alpha")
    assert.has_error(plugins.load, "PLUGINS: 'Alpha' is not a plugin name ([a-z0-9_-])")
  end)

  it("fails for settings that are not JSON, with file:line", function()
    setup_plugins(nil, '{\n"alpha": {,\n}')
    local ok, err = pcall(plugins.load)
    assert.is_false(ok)
    assert.matches("^/etc/plugins.json:2: PLUGINS_CONFIG is not valid JSON", err)
    setup_plugins(nil, "[1, 2]")
    ok, err = pcall(plugins.load)
    assert.is_false(ok)
    assert.matches("must be a JSON object", err, 1, true)
  end)
end)

describe("plugins.load: manifests and settings", function()
  local function load_error(m, config)
    define("alpha", m)
    setup_plugins("alpha", config)
    local ok, err = pcall(plugins.load)
    assert.is_false(ok)
    return err
  end

  it("checks the manifest and names the plugin's file", function()
    local prefix = "/srv/plugins/alpha/init.lua: plugin manifest: "
    assert.equal(prefix .. "name must be \"alpha\", the folder's name (got beta)",
      load_error({ name = "beta" }))
    assert.equal(prefix .. "priority must be an integer", load_error({ priority = 1.5 }))
    assert.equal(prefix .. "version must be a version string such as \"1.0.0\"",
      load_error({ version = "one" }))
    assert.equal(prefix .. "unknown field 'colour'", load_error({ colour = "red" }))
    assert.matches("hooks.task.exploded: not a domain event",
      load_error({ hooks = { ["task.exploded"] = function() end } }), 1, true)
    assert.equal(prefix .. "hooks.before must be a function", load_error({ hooks = { before = 1 } }))
    assert.matches(prefix .. "schema.properties.x", load_error({ schema = { type = "object",
      properties = { x = { type = "strng" } } } }), 1, true)
  end)

  it("validates the settings against the schema, with defaults, and hands them to hooks", function()
    local seen
    define("alpha", {
      schema = { type = "object", properties = {
        n = { type = "integer", minimum = 1, default = 3 },
        url = { type = "string" },
      } },
      init = function(conf) seen = conf end,
    })
    setup_plugins("alpha", '{"alpha": {"url": "x"}}')
    plugins.load()
    assert.same({ n = 3, url = "x" }, seen)
    setup_plugins("alpha", '{\n  "alpha": {\n    "n": 0\n  }\n}')
    local ok, err = pcall(plugins.load)
    assert.is_false(ok)
    assert.matches("^/etc/plugins.json:3: invalid settings for plugin 'alpha' %(schema in "
      .. "/srv/plugins/alpha/init.lua%): n must be", err)
  end)

  it("collects the routes a plugin adds, tagged with the plugin", function()
    local group = { routes = { { method = "GET", path = "/x" } } }
    define("alpha", { routes = function(conf)
      assert.same({}, conf)
      return group
    end })
    setup_plugins("alpha")
    local routes = plugins.load()
    assert.equal(1, #routes)
    assert.equal("alpha", routes[1].plugin)
  end)
end)

describe("plugins: domain events", function()
  local function load_three(hooks_of)
    define("alpha", { priority = 1, hooks = hooks_of("alpha") })
    define("beta", { priority = 50, hooks = hooks_of("beta") })
    define("gamma", { priority = 50, hooks = hooks_of("gamma") })
    setup_plugins("alpha,beta,gamma")
    plugins.load()
  end

  it("maps task:created to task.created and runs hooks by priority (ties by name)", function()
    local ev_seen
    load_three(function(name)
      return { ["task.created"] = recorder(name, "task.created", function(ev) ev_seen = ev end) }
    end)
    plugins.begin({ user = { id = "u1", role = "user" } })
    plugins.domain_event("project:p1", "task:created", { task = { id = "t1" } })
    assert.same({ "beta:task.created", "gamma:task.created", "alpha:task.created" }, calls)
    assert.equal("task.created", ev_seen.name)
    assert.equal("p1", ev_seen.project_id)
    assert.equal("u1", ev_seen.actor_id)
    assert.equal("req-1", ev_seen.request_id)
    assert.equal("2026-01-01T00:00:00.123Z", ev_seen.occurred_at)
    assert.same({ task = { id = "t1" } }, ev_seen.data)
  end)

  it("runs a plugin's named hook before its \"*\" hook, and ignores non-domain events", function()
    define("alpha", { hooks = { ["*"] = recorder("alpha", "*"),
      ["member.added"] = recorder("alpha", "member.added") } })
    setup_plugins("alpha")
    plugins.load()
    plugins.domain_event("project:p1", "member:added", {})
    plugins.domain_event("user:u1", "notification:created", {})
    assert.same({ "alpha:member.added", "alpha:*" }, calls)
  end)

  it("wraps each hook in a savepoint, released on success", function()
    load_three(function(name)
      return { ["task.deleted"] = recorder(name, "task.deleted") }
    end)
    plugins.domain_event("project:p1", "task:deleted", {})
    assert.equal(6, #queries)
    for i = 1, 6, 2 do
      assert.equal("SAVEPOINT tk_plugin_hook", queries[i])
      assert.equal("RELEASE SAVEPOINT tk_plugin_hook", queries[i + 1])
    end
  end)

  it("rolls a failing hook back to its savepoint, logs and counts it, and runs the others",
    function()
      load_three(function(name)
        return { ["task.updated"] = recorder(name, "task.updated", name == "beta" and function()
          error("beta broke")
        end or nil) }
      end)
      plugins.domain_event("project:p1", "task:updated", {})
      assert.same({ "beta:task.updated", "gamma:task.updated", "alpha:task.updated" }, calls)
      assert.same({ "SAVEPOINT tk_plugin_hook", "ROLLBACK TO SAVEPOINT tk_plugin_hook",
        "RELEASE SAVEPOINT tk_plugin_hook" }, { queries[1], queries[2], queries[3] })
      assert.equal(1, plugins.failures().by_plugin.beta)
      assert.equal(1, plugins.failures().total)
      assert.matches("plugin beta: task.updated hook failed.*beta broke", logged[1].msg)
    end)

  it("treats a hook that left the transaction aborted as failed", function()
    define("alpha", { hooks = { ["comment.created"] = recorder("alpha", "comment.created") } })
    setup_plugins("alpha")
    plugins.load()
    fail_sql["RELEASE SAVEPOINT tk_plugin_hook"] = true
    plugins.domain_event("project:p1", "comment:created", {})
    assert.equal("ROLLBACK TO SAVEPOINT tk_plugin_hook", queries[3])
    assert.equal(1, plugins.failures().total)
    assert.matches("left the transaction aborted", logged[1].msg)
  end)

  it("uses no savepoint outside a transaction; a hook's own events do not re-enter", function()
    in_tx = false
    define("alpha", { hooks = { ["task.created"] = recorder("alpha", "task.created", function()
      plugins.domain_event("project:p1", "task:created", {})
    end) } })
    setup_plugins("alpha")
    plugins.load()
    plugins.domain_event("project:p1", "task:created", {})
    assert.same({ "alpha:task.created" }, calls)
    assert.same({}, queries)
  end)
end)

describe("plugins: request phases", function()
  it("runs before and after hooks by priority; before may answer with an HTTP error", function()
    define("alpha", { priority = 1, hooks = { before = recorder("alpha", "before"),
      after = recorder("alpha", "after") } })
    define("beta", { priority = 9, hooks = {
      before = recorder("beta", "before", function(req)
        if req.deny then
          errors.forbidden("no")
        end
      end),
      after = recorder("beta", "after") } })
    setup_plugins("alpha,beta")
    plugins.load()
    plugins.before({}, {})
    plugins.after({}, 200, {})
    assert.same({ "beta:before", "alpha:before", "beta:after", "alpha:after" }, calls)
    calls = {}
    local ok, err = pcall(plugins.before, { deny = true }, {})
    assert.is_false(ok)
    assert.is_true(errors.is(err))
    assert.equal(403, err.status)
    assert.same({ "beta:before" }, calls)
    assert.equal(0, plugins.failures().total)
  end)

  it("isolates other errors in before and after hooks: logged, counted, nothing raised", function()
    define("alpha", { hooks = {
      before = function() error("before broke") end,
      after = function() error("after broke") end,
    } })
    setup_plugins("alpha")
    plugins.load()
    plugins.before({}, {})
    plugins.after({}, 500, nil)
    assert.equal(2, plugins.failures().by_plugin.alpha)
    assert.matches("plugin alpha: before hook failed.*before broke", logged[1].msg)
    assert.matches("plugin alpha: after hook failed.*after broke", logged[2].msg)
  end)
end)

describe("plugins: amend hooks", function()
  -- apply as a route gives it: refuses a priority it does not know (422),
  -- else returns new data with the change over the data's task, version bumped.
  local function apply_for()
    return function(changes, data)
      if changes.priority == "bogus" then
        errors.field("priority", "must be one of low, medium, high, urgent")
      end
      local t = {}
      for k, v in pairs(data.task) do t[k] = v end
      for k, v in pairs(changes) do t[k] = v end
      t.version = t.version + 1
      return { task = t }
    end
  end

  it("runs by priority, each in a savepoint, and returns the data after every change", function()
    define("alpha", { priority = 1, hooks = { amend = { ["task.created"] = function(ev)
      calls[#calls + 1] = "alpha:" .. ev.data.task.assigneeId
      return { priority = "high" }
    end } } })
    define("beta", { priority = 9, hooks = { amend = { ["task.created"] = function(ev)
      calls[#calls + 1] = "beta:" .. ev.name .. ":" .. ev.project_id
      return { assigneeId = "u1" }
    end } } })
    setup_plugins("alpha,beta")
    plugins.load()
    local data = plugins.amend("task.created", "project:p1",
      { task = { version = 1, priority = "low" } }, apply_for())
    assert.same({ "beta:task.created:p1", "alpha:u1" }, calls)
    assert.same({ version = 3, priority = "high", assigneeId = "u1" }, data.task)
    assert.same({ "SAVEPOINT tk_plugin_hook", "RELEASE SAVEPOINT tk_plugin_hook",
      "SAVEPOINT tk_plugin_hook", "RELEASE SAVEPOINT tk_plugin_hook" }, queries)
    assert.equal(0, plugins.failures().total)
  end)

  it("rolls back a refused change, a raise and a bad return alone, drops their queued events, "
    .. "counts each by plugin and hook", function()
    define("alpha", { hooks = { amend = { ["task.updated"] = function()
      pending = pending + 1 -- an event published by the hook, then refused
      return { priority = "bogus" }
    end } } })
    define("beta", { hooks = { amend = { ["task.updated"] = function() error("beta broke") end } } })
    define("gamma", { hooks = { amend = { ["task.updated"] = function() return "high" end } } })
    setup_plugins("alpha,beta,gamma")
    plugins.load()
    local before = { task = { version = 2 } }
    local data = plugins.amend("task.updated", "project:p1", before, apply_for())
    assert.equal(before, data)
    assert.equal(0, pending)
    assert.equal(3, plugins.failures().total)
    assert.same({ ["alpha/amend:task.updated"] = 1, ["beta/amend:task.updated"] = 1,
      ["gamma/amend:task.updated"] = 1 }, counted)
    assert.matches("plugin alpha: amend:task.updated hook failed.*priority must be one of", logged[1].msg)
    assert.matches("beta broke", logged[2].msg)
    assert.matches("returns a table of changes or nil", logged[3].msg)
    assert.equal("ROLLBACK TO SAVEPOINT tk_plugin_hook", queries[2])
  end)

  it("applies each change over the data of the last hook that succeeded", function()
    define("alpha", { priority = 9, hooks = { amend = { ["task.created"] = function()
      fail_sql["RELEASE SAVEPOINT tk_plugin_hook"] = true -- its savepoint cannot be released
      return { priority = "high" }
    end } } })
    define("beta", { priority = 1, hooks = { amend = { ["task.created"] = function(ev)
      fail_sql = {}
      calls[#calls + 1] = "beta saw version " .. ev.data.task.version
      return { title = "b" }
    end } } })
    setup_plugins("alpha,beta")
    plugins.load()
    local data = plugins.amend("task.created", "project:p1", { task = { version = 1 } }, apply_for())
    assert.same({ "beta saw version 1" }, calls)
    assert.same({ version = 2, title = "b" }, data.task)
    assert.equal(1, plugins.failures().by_plugin.alpha)
  end)

  it("lets a hook refuse the whole write with an HTTP error", function()
    define("alpha", { hooks = { amend = { ["task.created"] = function()
      errors.field("dueDate", "tasks of this project need a due date")
    end } } })
    setup_plugins("alpha")
    plugins.load()
    local ok, err = pcall(plugins.amend, "task.created", "project:p1", { task = {} }, function() end)
    assert.is_false(ok)
    assert.equal(422, err.status)
    assert.equal(0, plugins.failures().total)
  end)

  it("refuses an amend hook for an event whose entity it may not change", function()
    define("alpha", { hooks = { amend = { ["comment.created"] = function() end } } })
    setup_plugins("alpha")
    local ok, err = pcall(plugins.load)
    assert.is_false(ok)
    assert.matches("hooks.amend.comment.created: not an event whose entity a hook may change", err,
      1, true)
  end)

  it("fails the load when the settings file could not be read", function()
    settings = { config_error = "PLUGINS_CONFIG: cannot read /etc/plugins.json: No such file" }
    local ok, err = pcall(plugins.load)
    assert.is_false(ok)
    assert.equal("PLUGINS_CONFIG: cannot read /etc/plugins.json: No such file", err)
  end)
end)
