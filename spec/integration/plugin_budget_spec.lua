-- A plugin hook that spends the instruction budget (lib.plugins runs every
-- hook through runtime.fenced): a domain hook inside the change's
-- transaction fails alone (its writes rolled back to its savepoint), an
-- `after` hook fails after the answer is decided; either way the request
-- answers what was stored (201), once, and the worker goes on serving. On a
-- server of this spec's own with the fixture plugin `hog` enabled.
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"

describe("a plugin hook that spends the instruction budget", function()
  local own, api, owner, project

  setup(function()
    local _, scripts, plugins_dir = E.trees()
    -- a small budget keeps the spinning short; requests need far less
    own = E.server({ SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir, PLUGINS = "hog",
      LUA_INSTRUCTION_BUDGET = "20000000" })
    api = E.api(own.url)
    owner = api.user("Budget Owner")
    project = api.project(owner)
  end)

  teardown(function()
    if own then
      own:stop()
    end
    E.cleanup()
  end)

  local function count(sql)
    return tonumber((h.psql(sql):match("%d+")))
  end

  it("in a domain hook (comment.created): 201 with the comment stored, the hook's write rolled back", function()
    local task = api.task(owner, project)
    local res = api.call("POST", "/tasks/" .. task.id .. "/comments", owner.access,
      { content = "spin in the domain hook" })
    local c = h.expect_status(res, 201).data
    assert.are.equal("spin in the domain hook", c.content)
    local listed = h.expect_status(api.call("GET", "/tasks/" .. task.id .. "/comments", owner.access), 200).data
    assert.are.equal(1, #listed) -- stored once: nothing for a client to retry
    assert.are.equal(c.id, listed[1].id)
    assert.are.equal(0, count("SELECT count(*) FROM activity WHERE action = 'hog.comment' AND project_id = "
      .. h.sql_literal(project)))
    assert.truthy(own:wait_log("plugin hog: comment%.created hook failed[^\n]*instruction budget exceeded", 10),
      own:log_text():sub(-2000))
  end)

  it("in a domain hook (task.created): 201 with the task stored, and the event carries it", function()
    local t = api.task(owner, project, { title = "spin in the domain hook" })
    local got = h.expect_status(api.call("GET", "/tasks/" .. t.id, owner.access), 200).data
    assert.are.equal(t.id, got.id)
    assert.are.equal(0, count("SELECT count(*) FROM activity WHERE action = 'hog.task' AND project_id = "
      .. h.sql_literal(project)))
  end)

  it("in an `after` hook: the answer stands (201, stored once)", function()
    local res = api.call("POST", "/projects/" .. project .. "/tasks", owner.access,
      { title = "after hook spins" }, { ["X-Hog"] = "after" })
    local t = h.expect_status(res, 201).data
    h.expect_status(api.call("GET", "/tasks/" .. t.id, owner.access), 200)
    assert.are.equal(1, count("SELECT count(*) FROM tasks WHERE title = 'after hook spins' AND project_id = "
      .. h.sql_literal(project)))
    assert.truthy(own:wait_log("plugin hog: after hook failed[^\n]*instruction budget exceeded", 10),
      own:log_text():sub(-2000))
  end)

  it("keeps every worker serving", function()
    for _ = 1, 8 do
      h.expect_status(api.call("GET", "/auth/me", owner.access), 200)
    end
  end)
end)
