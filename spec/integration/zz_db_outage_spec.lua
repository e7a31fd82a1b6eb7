-- Database outage (API.md §1 `503 unavailable`, §9 health): PostgreSQL is
-- stopped hard under the running server and started again; taskapi must
-- answer 503 meanwhile and recover on its own, without a restart.
--
-- Guarded: runs only when the environment says how to control the test
-- cluster (bin/test exports these):
--   TASKAPI_PG_CTL    command prefix running pg_ctl on the cluster behind
--                     DATABASE_URL, with -D, e.g.
--                     "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /path/data"
--                     (this spec appends "stop -m immediate -w", "status", and
--                     "start -w -t 60" unless TASKAPI_PG_START is set)
--   TASKAPI_PG_START  optional: the full command that starts the cluster again
--                     (preferred over "$TASKAPI_PG_CTL start -w -t 60")
--   TASKAPI_PG_LOG    optional: server log file for "$TASKAPI_PG_CTL start -l"
-- Commands run through /bin/sh from /, so the postgres user can always
-- enter the working directory. The file name sorts last: the cluster is
-- down for a few seconds, and is restarted even when an assertion fails.
local h = require "spec.integration.helper"

local PG_CTL = os.getenv("TASKAPI_PG_CTL")
local PG_START = os.getenv("TASKAPI_PG_START")
local PG_LOG = os.getenv("TASKAPI_PG_LOG")

-- Runs a shell command from /; returns ok, exit code, output.
local function sh(cmd)
  local f = assert(io.popen("cd / && " .. cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok, _, code = f:close()
  return ok == true, code, out
end

local function pg_running()
  local ok = sh(PG_CTL .. " status")
  return ok
end

local function pg_start()
  local cmd = PG_START
  if cmd == nil or cmd == "" then
    cmd = PG_CTL .. " start -w -t 60"
    if PG_LOG and PG_LOG ~= "" then
      cmd = cmd .. " -l " .. h.shell_quote(PG_LOG)
    else
      -- Without -l the server would write to (and hold open) our stdout.
      cmd = cmd .. " -l /dev/null"
    end
  end
  local ok, code, out = sh(cmd .. " </dev/null")
  if not ok then
    error(("starting PostgreSQL failed (exit %s): %s\n%s"):format(tostring(code), cmd, out), 2)
  end
end

local function pg_stop()
  local ok, code, out = sh(PG_CTL .. " stop -m immediate -w -t 60")
  if not ok then
    error(("stopping PostgreSQL failed (exit %s): %s"):format(tostring(code), out), 2)
  end
end

-- Polls GET path until it answers `status` or `seconds` pass; returns the last answer.
local function wait_for(path, status, seconds)
  local deadline = h.now() + seconds
  local res
  repeat
    res = h.call("GET", path)
    if res.status == status then
      return res
    end
    h.sleep(0.2)
  until h.now() > deadline
  return res
end

describe("database outage", function()
  if PG_CTL == nil or PG_CTL == "" then
    pending("TASKAPI_PG_CTL is not set (a pg_ctl command prefix for the test cluster); outage spec not run")
    return
  end

  it("Killing PostgreSQL under the server gives 503s, and restarting it brings 200s back without restarting taskapi",
    function()
      assert.is_true(pg_running(), "the cluster TASKAPI_PG_CTL names is not running: " .. PG_CTL)
      local u = h.register_user({ name = "Outage User" })
      local before = h.expect_status(h.call("GET", "/health"), 200)
      assert.are.equal("ok", before.checks.database)

      finally(function()
        if not pg_running() then
          pg_start()
        end
      end)

      -- The test cluster may run with fsync/synchronous_commit off: flush
      -- what is committed, or an immediate stop could lose the user above.
      h.psql("CHECKPOINT")
      pg_stop()
      assert.is_false(pg_running())

      -- Health: 503 degraded, naming the failing check.
      local res = h.call("GET", "/health")
      local b = h.expect_status(res, 503)
      assert.are.equal("degraded", b.status)
      assert.are.equal("unavailable", b.checks.database)
      assert.is_string(b.checks.redis)
      assert.is_string(b.version)
      assert.is_number(b.uptimeSeconds)
      h.expect_status(h.call("GET", "/health/ready"), 503)
      h.expect_status(h.call("GET", "/health/live"), 200)

      -- Database-backed routes: 503 unavailable, every time (each pooled
      -- connection finds out on its own), never a 500.
      for i = 1, 8 do
        res = h.call("POST", "/api/v1/auth/login", { body = { email = u.email, password = u.password } })
        local e = h.expect_error(res, 503, "unavailable")
        assert.is_falsy(e.message:find("postgres", 1, true) or e.message:find("5432", 1, true),
          "503 message leaks internals: " .. e.message)
        if i == 1 then
          h.expect_error(h.call("POST", "/api/v1/auth/forgot-password", { body = { email = u.email } }),
            503, "unavailable")
        end
      end

      pg_start()
      assert.is_true(pg_running())

      -- Back within 20 s, same process (uptime did not restart).
      res = wait_for("/health", 200, 20)
      local after = h.expect_status(res, 200)
      assert.are.equal("ok", after.status)
      assert.are.equal("ok", after.checks.database)
      assert.is_true(after.uptimeSeconds >= before.uptimeSeconds,
        ("uptime went from %s to %s: taskapi restarted?"):format(before.uptimeSeconds, after.uptimeSeconds))
      h.expect_status(wait_for("/health/ready", 200, 20), 200)

      -- Every pooled connection recovers: a burst of logins all succeed.
      for _ = 1, 6 do
        h.login(u.email, u.password)
      end
      local d = h.login(u.email, u.password)
      assert.are.equal(u.user.id, h.expect_status(h.call("GET", "/api/v1/auth/me", { token = d.accessToken }), 200)
        .data.id)
      for _, r in ipairs(h.parallel(12, "GET", "/api/v1/__test/shapes")) do
        assert.are.equal(200, r.status, r.raw)
      end
    end)
end)
