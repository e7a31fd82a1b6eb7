-- Redis going away and coming back under a running server (API.md §8): a
-- client on a raw native WebSocket gets every event of the tasks made
-- before, during and after the outage exactly once, none lost and none
-- twice. While Redis is up an instance's own events reach its sockets when
-- they come back through Redis; when Redis dies under an event on its way,
-- the server delivers it itself, once (events/bus.h).
--
-- The spec owns its server (support/rel_server.lua) and a redis-server of
-- its own on a free port (the suite's Redis stays untouched), which it
-- kills hard and starts again on the same port. Pending without
-- redis-server on PATH.
local cjson = require "cjson"
local socket = require "socket"
local rel = require "spec.integration.support.rel_server"
local ws = require "spec.integration.support.rawws"

local quote = rel.quote

local post = rel.post

-- A redis-server of the spec's own: start() on a fixed port, kill() hard.
local function private_redis()
  local _, _, dir = rel.sh("mktemp -d /tmp/taskapi-flap.XXXXXX")
  local r = { port = rel.free_port(), dir = (dir:gsub("%s+$", "")) }
  r.url = "redis://127.0.0.1:" .. r.port
  function r.start()
    local ok, code, out = rel.sh(("redis-server --bind 127.0.0.1 --port %d --save '' --appendonly no "
      .. "--daemonize yes --pidfile %s --logfile %s --dir %s"):format(r.port, quote(r.dir .. "/redis.pid"),
      quote(r.dir .. "/redis.log"), quote(r.dir)))
    assert(ok, ("redis-server did not start (%s): %s"):format(tostring(code), out))
    local deadline = socket.gettime() + 10
    while socket.gettime() < deadline do
      local c = socket.tcp()
      c:settimeout(0.2)
      if c:connect("127.0.0.1", r.port) then
        c:send("PING\r\n")
        local line = c:receive("*l")
        c:close()
        if line == "+PONG" then
          return
        end
      else
        c:close()
      end
      socket.sleep(0.05)
    end
    error("redis-server did not answer on port " .. r.port)
  end
  function r.pid()
    local s = rel.read(r.dir .. "/redis.pid")
    return s and tonumber(s:match("%d+"))
  end
  function r.kill()
    local pid = r.pid()
    if pid then
      rel.sh("kill -KILL " .. pid)
      for _ = 1, 100 do
        if not rel.sh("kill -0 " .. pid) then
          break
        end
        socket.sleep(0.02)
      end
      os.remove(r.dir .. "/redis.pid")
    end
  end
  function r.cleanup()
    r.kill()
    rel.sh("rm -rf " .. quote(r.dir))
  end
  return r
end

--- /health's checks.redis of server s.
local function redis_check(s)
  local _, body = s:get("/health")
  return body and body.checks and body.checks.redis
end

local function wait_redis(s, want, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    if redis_check(s) == want then
      return true
    end
    socket.sleep(0.1)
  until socket.gettime() > deadline
  return false
end

describe("realtime across a Redis outage", function()
  if not rel.sh("command -v redis-server") then
    pending("redis-server is not on PATH; the Redis flap spec is not run")
    return
  end

  local s, redis

  setup(function()
    redis = private_redis()
    redis.start()
    s = rel.start({ env = { REDIS_URL = redis.url, BCRYPT_COST = "4" } })
  end)

  teardown(function()
    local code, reports
    if s then
      code = s:stop()
      reports = s:sanitizer_reports()
      s:cleanup()
    end
    if redis then
      redis.cleanup()
    end
    assert.are.equal(0, code)
    assert.are.same({}, reports)
  end)

  it("delivers every task event on a raw WebSocket exactly once while Redis is stopped and restarted", function()
    assert.is_true(wait_redis(s, "ok", 20), "the server never reported Redis ok")

    local email = ("flap%d%d@example.com"):format(os.time(), math.random(1e6))
    local reg = post(s, "/api/v1/auth/register", { email = email, password = "Pw-flap-123456", name = "Flap" })
    assert.are.equal(201, reg)
    local st, login = post(s, "/api/v1/auth/login", { email = email, password = "Pw-flap-123456" })
    assert.are.equal(200, st)
    local token = login.data.accessToken
    local pst, project = post(s, "/api/v1/projects", { name = "flap " .. email }, token)
    assert.are.equal(201, pst)
    local room = "project:" .. project.data.id

    local c = assert(ws.connect(s.ws_port))
    assert.are.equal(101, (ws.handshake(c, "/ws?token=" .. token)))
    local seen = {} -- title -> times its task:created arrived
    local function read_until(pred, seconds)
      local deadline = socket.gettime() + seconds
      while not pred() do
        local left = deadline - socket.gettime()
        if left <= 0 then
          return false
        end
        local op, payload = ws.read_frame(c, left)
        assert(op ~= nil or payload == "timeout", "the socket ended: " .. tostring(payload))
        if op == 0x1 then
          local m = cjson.decode(payload)
          if m.type == "event" and m.event == "task:created" and m.room == room then
            local t = m.data.task.title
            seen[t] = (seen[t] or 0) + 1
          elseif m.type == "joined" then
            seen["<joined>"] = true
          end
        end
      end
      return true
    end
    c:send(ws.frame(0x1, cjson.encode({ type = "join", room = room })))
    assert.is_true(read_until(function() return seen["<joined>"] end, 10), "no joined")
    seen["<joined>"] = nil

    local made = {}
    local function make(phase, n)
      for i = 1, n do
        local title = ("%s-%d"):format(phase, i)
        local code = post(s, "/api/v1/projects/" .. project.data.id .. "/tasks", { title = title }, token)
        assert.are.equal(201, code, title)
        made[#made + 1] = title
      end
    end
    local function all_seen()
      for _, t in ipairs(made) do
        if not seen[t] then
          return false
        end
      end
      return true
    end

    make("before", 5)
    -- Redis dies right after (the subscriber notices at once, the publisher
    -- with its next message), then more changes while it is down.
    redis.kill()
    make("killed", 5)
    assert.is_true(wait_redis(s, "unavailable", 20), "the server never noticed Redis going")
    make("down", 5)
    -- Back on the same port: changes while the bridge reconnects, and after.
    redis.start()
    make("restarting", 5)
    assert.is_true(wait_redis(s, "ok", 30), "the server never reconnected to Redis")
    make("after", 5)

    assert.is_true(read_until(all_seen, 15), "events lost: " .. cjson.encode(seen))
    -- Anything late or twice would show within the echo wait (1 s).
    read_until(function() return false end, 1.5)
    c:close()
    for _, t in ipairs(made) do
      assert.are.equal(1, seen[t], t .. " arrived " .. tostring(seen[t]) .. " times")
    end
    local n = 0
    for _ in pairs(seen) do
      n = n + 1
    end
    assert.are.equal(#made, n, "unexpected events: " .. cjson.encode(seen))
  end)
end)
