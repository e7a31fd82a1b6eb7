-- The shutdown deadline (runtime/main.c, SHUTDOWN_TIMEOUT_MS): the spec
-- starts its own server (support/rel_server.lua) with an instruction budget
-- so large that GET /api/v1/__sandbox/loop holds its worker for hours, and
-- SHUTDOWN_TIMEOUT_MS=1000. While a worker spins, SIGTERM must end the
-- process anyway, promptly, with exit status 1 and a log line saying what it
-- abandoned. A server whose workers are idle still stops with status 0.
local socket = require "socket"
local server = require "spec.integration.support.rel_server"

-- Sends GET path on a connection of its own; returns the socket unread.
local function send_get(s, path)
  local c = assert(socket.tcp())
  c:settimeout(30)
  assert(c:connect("127.0.0.1", s.port))
  assert(c:send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"):format(path)))
  return c
end

describe("SIGTERM", function()
  it("ends the process within SHUTDOWN_TIMEOUT_MS while a worker spins", function()
    local s = server.start({ env = { LUA_INSTRUCTION_BUDGET = "1000000000000", SHUTDOWN_TIMEOUT_MS = "1000" } })
    local ok, err = pcall(function()
      local c = send_get(s, "/api/v1/__sandbox/loop")
      -- give a worker time to take the loop; the other workers still answer
      socket.sleep(0.5)
      local status = s:get("/api/v1/__sandbox/ping")
      assert.are.equal(200, status)
      local t0 = socket.gettime()
      local code = s:stop(20) -- generous: the deadline is 1 s
      local took = socket.gettime() - t0
      c:close()
      assert.are.equal(1, code, ("exit status %s after %.1f s\n%s"):format(tostring(code), took, s:log()))
      assert.truthy(s:log():find("shutdown did not finish within SHUTDOWN_TIMEOUT_MS=1000 ms "
        .. "(still stopping the HTTP server and its workers)", 1, true), s:log())
      assert.falsy(server.read(s.pid_file), "the PID_FILE was left behind")
    end)
    s:cleanup()
    assert(ok, err)
  end)

  it("still stops with status 0 when nothing is running", function()
    local s = server.start({ env = { SHUTDOWN_TIMEOUT_MS = "5000" } })
    local ok, err = pcall(function()
      assert.are.equal(200, (s:get("/api/v1/__sandbox/ping")))
      local code = s:stop(20)
      assert.are.equal(0, code, s:log())
      assert.falsy(s:log():find("shutdown did not finish", 1, true), s:log())
      assert.are.same({}, s:sanitizer_reports())
    end)
    s:cleanup()
    assert(ok, err)
  end)
end)
