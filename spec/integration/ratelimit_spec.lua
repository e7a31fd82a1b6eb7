-- Rate limits (API.md §9, §10) on a server of this spec's own with small
-- limits: per user (per IP before login), one auth budget per client IP
-- shared by login/register/forgot/reset, failed logins per email, the
-- RateLimit-* headers, 429 with Retry-After, and the exempt endpoints.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local socket = require "socket"
local cjson = require "cjson"

-- One HTTP/1.1 request from source address `from` (127.0.0.x).
local function req(srv, method, path, opts)
  opts = opts or {}
  local c = assert(socket.tcp())
  c:settimeout(10)
  if opts.from then
    assert(c:bind(opts.from, 0))
  end
  assert(c:connect("127.0.0.1", srv.port))
  local body = opts.body and cjson.encode(opts.body) or ""
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
    "Content-Length: " .. #body }
  if opts.body then
    lines[#lines + 1] = "Content-Type: application/json"
  end
  if opts.token then
    lines[#lines + 1] = "Authorization: Bearer " .. opts.token
  end
  if opts.forwarded then
    lines[#lines + 1] = "X-Forwarded-For: " .. opts.forwarded
  end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
  local data = c:receive("*a")
  c:close()
  local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for k, v in data:match("^(.-)\r\n\r\n"):gmatch("\r\n([^:]+):%s*([^\r\n]*)") do
    headers[k:lower()] = v
  end
  local raw = data:match("\r\n\r\n(.*)$")
  local ok, decoded = pcall(cjson.decode, raw)
  return { status = status, headers = headers, body = ok and decoded or nil, raw = raw }
end

describe("rate limits", function()
  local srv

  setup(function()
    srv = server.start({ RATE_LIMIT_PER_MIN = 5, AUTH_RATE_LIMIT_PER_MIN = 3, TRUST_PROXY = "127.0.0.99" })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  it("limits a user to RATE_LIMIT_PER_MIN, with RateLimit-* headers and a 429 with Retry-After", function()
    local email, password = h.unique_email("rl"), h.unique_password()
    h.expect_status(req(srv, "POST", "/api/v1/auth/register", { from = "127.0.0.11",
      body = { email = email, password = password, name = "RL" } }), 201)
    local login = h.expect_status(req(srv, "POST", "/api/v1/auth/login", { from = "127.0.0.12",
      body = { email = email, password = password } }), 200)
    local token = login.data.accessToken
    local remaining = {}
    for i = 1, 5 do
      local r = req(srv, "GET", "/api/v1/auth/me", { token = token, from = "127.0.0.13" })
      assert.are.equal(200, r.status, r.raw)
      assert.are.equal("5", r.headers["ratelimit-limit"])
      remaining[i] = tonumber(r.headers["ratelimit-remaining"])
      local reset = tonumber(r.headers["ratelimit-reset"])
      assert.is_true(reset >= 1 and reset <= 60)
    end
    assert.are.same({ 4, 3, 2, 1, 0 }, remaining)
    -- The budget is the user's, not the address's.
    local r = req(srv, "GET", "/api/v1/auth/me", { token = token, from = "127.0.0.14" })
    assert.are.equal(429, r.status, r.raw)
    assert.are.equal("rate_limited", r.body.error.code)
    local retry = tonumber(r.headers["retry-after"])
    assert.is_true(retry ~= nil and retry >= 1 and retry <= 60)
    assert.are.equal("0", r.headers["ratelimit-remaining"])
  end)

  it("shares one budget per client IP across login, register, forgot-password and reset-password", function()
    local from = "127.0.0.21"
    h.expect_status(req(srv, "POST", "/api/v1/auth/forgot-password", { from = from,
      body = { email = h.unique_email("x") } }), 202)
    h.expect_status(req(srv, "POST", "/api/v1/auth/login", { from = from,
      body = { email = h.unique_email("x"), password = "whatever1" } }), 401)
    h.expect_status(req(srv, "POST", "/api/v1/auth/reset-password", { from = from,
      body = { token = "nope", password = "whatever12" } }), 422)
    local r = req(srv, "POST", "/api/v1/auth/register", { from = from,
      body = { email = h.unique_email("x"), password = "whatever12", name = "X" } })
    assert.are.equal(429, r.status, r.raw)
    assert.are.equal("rate_limited", r.body.error.code)
    assert.is_not_nil(r.headers["retry-after"])
    -- Another address still has its budget.
    h.expect_status(req(srv, "POST", "/api/v1/auth/forgot-password", { from = "127.0.0.22",
      body = { email = h.unique_email("x") } }), 202)
  end)

  it("limits failed logins per email, whatever address they come from", function()
    local email, password = h.unique_email("victim"), h.unique_password()
    h.expect_status(req(srv, "POST", "/api/v1/auth/register", { from = "127.0.0.31",
      body = { email = email, password = password, name = "V" } }), 201)
    for i = 1, 3 do
      local r = req(srv, "POST", "/api/v1/auth/login", { from = "127.0.0." .. (40 + i),
        body = { email = email, password = "wrong-password" } })
      assert.are.equal(401, r.status, r.raw)
    end
    local r = req(srv, "POST", "/api/v1/auth/login", { from = "127.0.0.50",
      body = { email = email, password = password } })
    assert.are.equal(429, r.status, r.raw)
    assert.are.equal("rate_limited", r.body.error.code)
    assert.is_not_nil(r.headers["retry-after"])
  end)

  it("behind a trusted proxy, counts per X-Forwarded-For client; others cannot forge it", function()
    local function forgot(from, forwarded)
      return req(srv, "POST", "/api/v1/auth/forgot-password", { from = from, forwarded = forwarded,
        body = { email = h.unique_email("p") } })
    end
    for _ = 1, 3 do
      h.expect_status(forgot("127.0.0.99", "198.51.100.1, 203.0.113.7"), 202)
    end
    assert.are.equal(429, forgot("127.0.0.99", "198.51.100.1, 203.0.113.7").status)
    -- Another client behind the same proxy has a budget of its own.
    h.expect_status(forgot("127.0.0.99", "203.0.113.8"), 202)
    -- A client that is not a trusted proxy cannot choose its address.
    for _ = 1, 3 do
      h.expect_status(forgot("127.0.0.98", "203.0.113.9"), 202)
    end
    assert.are.equal(429, forgot("127.0.0.98", "203.0.113.10").status)
  end)

  it("never limits /health, /health/live, /health/ready or the OpenAPI document", function()
    for _ = 1, 12 do
      for _, path in ipairs({ "/health", "/health/live", "/health/ready", "/api/v1/openapi.json" }) do
        local r = req(srv, "GET", path, { from = "127.0.0.61" })
        assert.are.equal(200, r.status, path)
        assert.is_nil(r.headers["ratelimit-limit"], path)
      end
    end
  end)

  it("counts unknown paths nowhere and answers them 404", function()
    for _ = 1, 8 do
      local r = req(srv, "GET", "/api/v1/nope", { from = "127.0.0.71" })
      assert.are.equal(404, r.status)
    end
  end)
end)

describe("rate limits shared through Redis", function()
  local redis = os.getenv("TEST_REDIS_URL")
  local a, b

  setup(function()
    if redis then
      local env = { RATE_LIMIT_PER_MIN = 100, AUTH_RATE_LIMIT_PER_MIN = 4, REDIS_URL = redis }
      a = server.start(env)
      b = server.start(env)
    end
  end)

  teardown(function()
    if a then
      a.stop()
    end
    if b then
      b.stop()
    end
  end)

  it("counts one budget across instances", function()
    if not redis then
      pending("TEST_REDIS_URL is not set")
      return
    end
    local from = "127.0.0.81"
    local function forgot(srv)
      return req(srv, "POST", "/api/v1/auth/forgot-password", { from = from,
        body = { email = h.unique_email("r") } })
    end
    h.expect_status(forgot(a), 202)
    h.expect_status(forgot(b), 202)
    h.expect_status(forgot(a), 202)
    local last = forgot(b)
    h.expect_status(last, 202)
    assert.are.equal("0", last.headers["ratelimit-remaining"])
    local over = forgot(a)
    assert.are.equal(429, over.status, over.raw)
    assert.are.equal(429, forgot(b).status)
  end)
end)
