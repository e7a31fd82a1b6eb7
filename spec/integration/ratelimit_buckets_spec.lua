-- Rate-limit buckets (scripts/policies/ratelimits.lua): a route's own limit
-- counts in a bucket of its own, never against the shared per-user budget;
-- a bucket's window is what the policy says, for the policy's own buckets
-- too (M.WINDOW, changed live by a reload). On a server of this spec's own.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local socket = require "socket"
local cjson = require "cjson"

-- One request on its own connection; body is a table (JSON) or nil.
local function req(srv, method, path, body, token)
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", srv.port))
  local payload = body and cjson.encode(body) or ""
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
    "Content-Length: " .. #payload }
  if body then
    lines[#lines + 1] = "Content-Type: application/json"
  end
  if token then
    lines[#lines + 1] = "Authorization: Bearer " .. token
  end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. payload))
  local data = assert(c:receive("*a"))
  c:close()
  local headers = {}
  for k, v in data:match("^(.-)\r\n\r\n"):gmatch("\r\n([^:]+):%s*([^\r\n]*)") do
    headers[k:lower()] = v
  end
  local raw = data:match("\r\n\r\n(.*)$")
  local ok, decoded = pcall(cjson.decode, raw)
  return { status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)")), headers = headers,
    body = ok and decoded or nil, raw = raw }
end

local function get(srv, path, token)
  return req(srv, "GET", path, nil, token)
end

local function login(srv)
  local email, password = h.unique_email("rlb"), h.unique_password()
  h.expect_status(req(srv, "POST", "/api/v1/auth/register",
    { email = email, password = password, name = "B" }), 201)
  return h.expect_status(req(srv, "POST", "/api/v1/auth/login",
    { email = email, password = password }), 200).data.accessToken
end

local function wait_reset(r)
  socket.sleep(tonumber(r.headers["retry-after"] or r.headers["ratelimit-reset"]) + 0.3)
end

describe("rate-limit buckets", function()
  local srv

  setup(function()
    srv = server.start({ RATE_LIMIT_PER_MIN = 20, AUTH_RATE_LIMIT_PER_MIN = 50 })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  it("counts a route's own limit in its own bucket, not in the user's shared budget", function()
    local token = login(srv)
    for _ = 1, 6 do -- unrelated calls: they spend the shared budget only
      h.expect_status(get(srv, "/api/v1/__rate/open", token), 200)
    end
    for i = 1, 3 do
      local r = get(srv, "/api/v1/__rate/own", token)
      assert.are.equal(200, r.status, ("call %d: %s"):format(i, r.raw))
      assert.are.equal("3", r.headers["ratelimit-limit"]) -- the tightest bucket is reported
      assert.are.equal(tostring(3 - i), r.headers["ratelimit-remaining"])
    end
    local r = get(srv, "/api/v1/__rate/own", token)
    assert.are.equal(429, r.status, r.raw)
    assert.are.equal("rate_limited", r.body.error.code)
    -- the shared budget is not exhausted by the route's own bucket
    h.expect_status(get(srv, "/api/v1/__rate/open", token), 200)
    -- and another user's bucket is their own
    h.expect_status(get(srv, "/api/v1/__rate/own", login(srv)), 200)
  end)

  it("honours a bucket's own window", function()
    local token = login(srv)
    h.expect_status(get(srv, "/api/v1/__rate/short", token), 200)
    h.expect_status(get(srv, "/api/v1/__rate/short", token), 200)
    local r = get(srv, "/api/v1/__rate/short", token)
    assert.are.equal(429, r.status, r.raw)
    local retry = tonumber(r.headers["retry-after"])
    assert.is_true(retry >= 1 and retry <= 2, "Retry-After " .. tostring(retry))
    wait_reset(r)
    h.expect_status(get(srv, "/api/v1/__rate/short", token), 200)
  end)

  it("applies the policy's M.WINDOW to its shared buckets, changed by a reload", function()
    local path = srv.dir .. "/scripts/policies/ratelimits.lua"
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    local patched, n = text:gsub("M%.WINDOW = 60", "M.WINDOW = 2")
    assert.are.equal(1, n, "the policy no longer says M.WINDOW = 60")
    f = assert(io.open(path .. ".tmp", "w"))
    f:write(patched)
    f:close()
    assert(os.rename(path .. ".tmp", path))
    os.execute("kill -HUP " .. srv.pid)
    local token = login(srv)
    local r
    for _ = 1, 100 do -- the reload lands within a second or two
      r = get(srv, "/api/v1/__rate/open", token)
      if tonumber(r.headers["ratelimit-reset"]) <= 2 then
        break
      end
      socket.sleep(0.1)
    end
    assert.is_true(tonumber(r.headers["ratelimit-reset"]) <= 2, "reset " .. tostring(r.headers["ratelimit-reset"]))
    repeat
      r = get(srv, "/api/v1/__rate/open", token)
    until r.status ~= 200
    assert.are.equal(429, r.status, r.raw)
    assert.is_true(tonumber(r.headers["retry-after"]) <= 2)
    wait_reset(r)
    h.expect_status(get(srv, "/api/v1/__rate/open", token), 200)
  end)
end)
