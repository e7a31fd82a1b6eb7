-- Jobs run by Lua handlers (lib.jobs.handle, docs/lua-api.md §8): the
-- fixture spec/fixtures/scripts/routes/zz_jobs.lua registers test.* kinds;
-- jobs are inserted as a script's jobs.enqueue would write them. A handler
-- that returns nothing is done; one that raises is retried with backoff and
-- its error (file:line) is the job's last_error; one that loops is stopped by
-- the instruction budget and retried. A kind no handler takes is never
-- claimed: it stays pending (attempts 0) and shows in taskapi_jobs_unhandled
-- and one warning; of two servers on one database, only the one whose
-- plugin handles a kind runs its jobs. tk.http refuses to run in a request.
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"

local function enqueue(kind, payload, max_attempts)
  return h.psql(("INSERT INTO jobs (kind, payload, max_attempts) VALUES (%s, %s::jsonb, %d) "
    .. "RETURNING id"):format(h.sql_literal(kind), h.sql_literal(payload), max_attempts or 10))
end

local function job(id)
  local row = h.psql("SELECT status || '|' || attempts || '|' || coalesce(last_error, '') "
    .. "FROM jobs WHERE id = " .. id)
  local status, attempts, err = row:match("^(%a+)|(%d+)|(.*)$")
  return { status = status, attempts = tonumber(attempts), last_error = err }
end

local function metric(name)
  local _, _, _, raw = h.request("GET", "/metrics")
  return tonumber(raw:match("\n" .. name:gsub("%p", "%%%0") .. " (%d+)"))
end

describe("jobs run by Lua handlers", function()
  it("a handler that returns nothing is done, with the payload decoded", function()
    local value = "echo-" .. h.random_word(8)
    local id = enqueue("test.echo", ('{"value": "%s"}'):format(value))
    local j = E.wait_for(10, function()
      local s = job(id)
      return s.status == "done" and s or nil
    end)
    assert.is_table(j, "the job never ran")
    assert.are.equal(1, j.attempts)
    assert.truthy(h.server_log():find(("test.echo job %s attempt 1: %s"):format(id, value), 1, true))
  end)

  it("a handler that raises is retried with backoff; last_error says file:line", function()
    local id = enqueue("test.fail", "{}", 2)
    local j = E.wait_for(10, function()
      local s = job(id)
      return s.status == "failed" and s or nil
    end)
    assert.is_table(j, "the job was not retried to its last attempt")
    assert.are.equal(2, j.attempts)
    assert.matches("zz_jobs%.lua:%d+: test%.fail always fails", j.last_error)
  end)

  it("a handler that loops is stopped by the instruction budget and retried", function()
    local id = enqueue("test.spin", "{}", 1)
    local j = E.wait_for(30, function()
      local s = job(id)
      return s.status == "failed" and s or nil
    end)
    assert.is_table(j, "the spinning job never settled")
    assert.matches("instruction budget exceeded", j.last_error)
  end)

  it("jobs.cancel fails the job without counting the attempt", function()
    local id = enqueue("test.cancel", "{}")
    local j = E.wait_for(10, function()
      local s = job(id)
      return s.status == "failed" and s or nil
    end)
    assert.is_table(j)
    assert.are.equal(0, j.attempts)
    assert.are.equal("nothing to do", j.last_error)
  end)

  it("a kind no handler takes is never claimed: pending, attempts 0, in the gauge and one "
    .. "warning", function()
    local id = enqueue("test.nobody_handles", "{}", 3)
    local gauge = 'taskapi_jobs_unhandled{kind="test.nobody_handles"}'
    -- the runner reads the backlog every 5 s; by then it has polled many times
    local n = E.wait_for(20, function()
      local v = metric(gauge)
      return v and v >= 1 and v or nil
    end)
    assert.is_number(n, "taskapi_jobs_unhandled never showed the kind")
    local j = job(id)
    assert.are.equal("pending", j.status)
    assert.are.equal(0, j.attempts)
    assert.are.equal("", j.last_error)
    local log = h.server_log()
    assert.truthy(log:find("of kind 'test.nobody_handles' wait: no handler here", 1, true))
    assert.falsy(log:find("no handler for job kind 'test.nobody_handles'", 1, true))
    h.psql("DELETE FROM jobs WHERE id = " .. id)
  end)

  describe("two servers on one database, one enabling the plugin that handles a kind", function()
    local with, without

    setup(function()
      local _, scripts, plugins_dir = E.trees()
      with = E.server({ SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir, PLUGINS = "jobkind" })
      without = E.server({ SCRIPTS_DIR = scripts, PLUGINS_DIR = plugins_dir,
        PLUGINS = "activity" })
    end)

    teardown(function()
      for _, s in ipairs({ with, without }) do
        if s then
          s:stop()
        end
      end
      E.cleanup()
    end)

    it("only the server with the handler runs its jobs; none fails with 'no handler'", function()
      -- both runners (and the suite's servers) poll every 50 ms meanwhile
      local ids = {}
      for i = 1, 8 do
        ids[i] = enqueue("fixture.jobkind", ('{"n": %d}'):format(i), 3)
      end
      local list = table.concat(ids, ",")
      local settled = E.wait_for(20, function()
        local left = h.psql("SELECT count(*) FROM jobs WHERE status = 'pending' AND id IN ("
          .. list .. ")")
        return left == "0" or nil
      end)
      assert.is_true(settled, "the jobs were not all run")
      assert.are.equal("8", h.psql("SELECT count(*) FROM jobs WHERE status = 'done' "
        .. "AND attempts = 1 AND last_error IS NULL AND id IN (" .. list .. ")"))
      local ran = with:log_text()
      for _, id in ipairs(ids) do
        assert.truthy(ran:find(("fixture.jobkind job %s attempt 1 run by"):format(id), 1, true),
          "job " .. id .. " not run by the server with the plugin")
      end
      for _, log in ipairs({ without:log_text(), h.server_log() }) do
        assert.falsy(log:find("fixture.jobkind job", 1, true))
        assert.falsy(log:find("no handler for job kind", 1, true))
      end
      -- what each runner claims (logged when it loads a generation)
      local pattern = "jobs: generation %d+ handles %d+ job kind%(s%): ([^\n]*)"
      assert.matches('"fixture.jobkind"', with:log_text():match(pattern), 1, true)
      local other = without:log_text():match(pattern)
      assert.matches('"test.echo"', other, 1, true)
      assert.falsy(other:find("fixture.jobkind", 1, true))
    end)

    it("the servers stop cleanly with no sanitizer reports", function()
      assert.are.equal("", with:stop())
      assert.are.equal("", without:stop())
      with, without = nil, nil
    end)
  end)

  it("tk.http.post is refused outside a job handler", function()
    local res = h.call("GET", "/api/v1/__jobs/http")
    assert.are.equal(200, res.status)
    assert.is_false(res.body.ok)
    assert.matches("only job handlers", res.body.error)
  end)

  it("the database refuses a kind that is not a dotted lower-case name", function()
    assert.has_error(function()
      enqueue("Bad Kind!", "{}")
    end)
  end)
end)
