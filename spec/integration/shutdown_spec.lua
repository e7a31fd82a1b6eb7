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
  it("drains first with SHUTDOWN_DRAIN_MS: new connections refused, open ones served "
    .. "with ready 503 and Connection: close, then exit 0",
    function()
      local s = server.start({ env = { SHUTDOWN_DRAIN_MS = "4000", SHUTDOWN_TIMEOUT_MS = "5000" } })
      local ok, err = pcall(function()
        -- one keep-alive connection, opened before the signal
        local c = assert(socket.tcp())
        c:settimeout(10)
        assert(c:connect("127.0.0.1", s.port))
        local function ask(path)
          assert(c:send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):format(path)))
          local head, len = {}, 0
          repeat
            local line = assert(c:receive("*l"))
            head[#head + 1] = line
            len = tonumber(line:lower():match("^content%-length:%s*(%d+)")) or len
          until line == ""
          local body = len > 0 and assert(c:receive(len)) or ""
          return table.concat(head, "\n"), body
        end
        local head = ask("/health/ready")
        assert.matches("^HTTP/1%.1 200", head)
        assert.falsy(head:lower():find("connection: close", 1, true))
        local t0 = socket.gettime()
        assert(server.sh("kill -TERM " .. s:pid()))
        local body
        head, body = ask("/health/ready")
        assert.matches("^HTTP/1%.1 503", head)
        assert.matches('"status":"shutting_down"', body, 1, true)
        assert.truthy(head:lower():find("connection: close", 1, true), head)
        c:close()
        -- the listening socket is closed: a proxy's connect fails at once and goes elsewhere
        local refused = false
        for _ = 1, 50 do
          local n = socket.tcp()
          n:settimeout(2)
          local okc = n:connect("127.0.0.1", s.port)
          n:close()
          if not okc then
            refused = true
            break
          end
          socket.sleep(0.05)
        end
        assert.is_true(refused, "new connections are still accepted during the drain")
        local code
        while socket.gettime() - t0 < 30 do
          local st = server.read(s.status_file)
          if st and st:match("%d+") then
            code = tonumber(st:match("%d+"))
            break
          end
          socket.sleep(0.05)
        end
        s.stopped = true
        assert.are.equal(0, code, s:log())
        assert.is_true(socket.gettime() - t0 >= 3.5, "the drain ended early")
        assert.truthy(s:log():find("draining for 4000 ms", 1, true), s:log())
      end)
      s:cleanup()
      assert(ok, err)
    end)
end)
