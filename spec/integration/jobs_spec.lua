-- Jobs run by Lua handlers (lib.jobs.handle, docs/lua-api.md §8): the
-- fixture spec/fixtures/scripts/routes/zz_jobs.lua registers test.* kinds;
-- jobs are inserted as a script's jobs.enqueue would write them. A handler
-- that returns nothing is done; one that raises is retried with backoff and
-- its error (file:line) is the job's last_error; one that loops is stopped by
-- the instruction budget and retried; an unknown kind is an error in the log
-- and in /metrics, retried, never dropped. tk.http refuses to run in a
-- request.
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

  it("an unknown kind is an error in the log and /metrics, retried, not dropped", function()
    local before = metric("taskapi_jobs_unknown_kind_total") or 0
    local id = enqueue("test.nobody_handles", "{}", 3)
    local j = E.wait_for(10, function()
      local s = job(id)
      return s.attempts >= 1 and s.last_error ~= "" and s or nil
    end)
    assert.is_table(j, "the job was never tried")
    assert.matches("no handler for job kind 'test.nobody_handles'", j.last_error)
    assert.truthy(h.server_log():find("jobs: job " .. id .. ": no handler for job kind", 1, true))
    assert.is_true(metric("taskapi_jobs_unknown_kind_total") > before)
    h.psql("DELETE FROM jobs WHERE id = " .. id)
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
