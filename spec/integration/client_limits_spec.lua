-- Limits that must key on the right client and count the right attempts
-- (issue 8), on a server of this spec's own: TRUST_PROXY with CIDR blocks
-- and X-Forwarded-For over several header lines (a proxy that appends a
-- line of its own must not let the client pick its address), and the
-- per-email failed-login limit under concurrency (at most the limit reaches
-- bcrypt; successes do not use it up).
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local socket = require "socket"
local cjson = require "cjson"

-- The limits count per fixed minute; a run straddling a minute boundary
-- would see its counts reset. Start well inside a minute.
local function inside_a_minute(needed)
  local left = 60 - os.time() % 60
  if left < needed then
    socket.sleep(left + 0.2)
  end
end

-- Builds a raw HTTP/1.1 request; opts.headers is a list of {name, value}
-- (repeated names are sent as separate lines, in order).
local function build(method, path, opts)
  local body = opts.body and cjson.encode(opts.body) or ""
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
    "Content-Length: " .. #body }
  if opts.body then
    lines[#lines + 1] = "Content-Type: application/json"
  end
  for _, hv in ipairs(opts.headers or {}) do
    lines[#lines + 1] = hv[1] .. ": " .. hv[2]
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

local function connect(srv, from)
  local c = assert(socket.tcp())
  c:settimeout(30)
  if from then
    assert(c:bind(from, 0))
  end
  assert(c:connect("127.0.0.1", srv.port))
  return c
end

local function read(c)
  local data = assert(c:receive("*a"))
  c:close()
  local raw = data:match("\r\n\r\n(.*)$") or ""
  local ok, decoded = pcall(cjson.decode, raw)
  return { status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)")), body = ok and decoded or nil, raw = raw }
end

local function req(srv, method, path, opts)
  opts = opts or {}
  local c = connect(srv, opts.from)
  assert(c:send(build(method, path, opts)))
  return read(c)
end

describe("X-Forwarded-For behind TRUST_PROXY=127.0.0.0/8,::1", function()
  local srv

  setup(function()
    srv = server.start({ TRUST_PROXY = "127.0.0.0/8, ::1", AUTH_RATE_LIMIT_PER_MIN = 3,
      RATE_LIMIT_PER_MIN = 1000 })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  local function forgot(from, xff_lines)
    local headers = {}
    for _, v in ipairs(xff_lines) do
      headers[#headers + 1] = { "X-Forwarded-For", v }
    end
    return req(srv, "POST", "/api/v1/auth/forgot-password", { from = from, headers = headers,
      body = { email = h.unique_email("xff") } })
  end

  it("keys on the client the proxy appended, whatever line the client sent first", function()
    inside_a_minute(15)
    -- The client forges a new address on its own line each time; the proxy
    -- (127.0.0.5, trusted through the CIDR) appends the real one as a line.
    for i = 1, 3 do
      h.expect_status(forgot("127.0.0.5", { "198.51.100." .. i, "203.0.113.50" }), 202)
    end
    local r = forgot("127.0.0.5", { "198.51.100.77", "203.0.113.50" })
    assert.are.equal(429, r.status, r.raw)
    -- Another client behind the same proxy has a budget of its own.
    h.expect_status(forgot("127.0.0.5", { "198.51.100.1", "203.0.113.51" }), 202)
  end)

  it("walks from the right over every trusted hop, across lines", function()
    inside_a_minute(15)
    -- client 203.0.113.60, then two trusted proxies; written three ways
    h.expect_status(forgot("127.0.0.6", { "203.0.113.60, 127.0.0.9" }), 202)
    h.expect_status(forgot("127.0.0.7", { "10.9.9.9, 203.0.113.60", "127.0.0.9" }), 202)
    h.expect_status(forgot("127.0.0.8", { "203.0.113.60", "127.0.0.9", "::1" }), 202)
    local r = forgot("127.0.0.6", { "192.0.2.1", "203.0.113.60,127.0.0.10" })
    assert.are.equal(429, r.status, r.raw)
    -- A malformed entry stops the walk at the last good hop: the proxy then
    -- counts as the client, with a budget apart from 203.0.113.60's.
    h.expect_status(forgot("127.0.0.11", { "203.0.113.60", "not-an-address" }), 202)
  end)
end)

describe("failed logins per email under concurrency", function()
  local srv
  local LIMIT = 5

  setup(function()
    -- 8 workers run bcrypt side by side; every request comes from its own
    -- address, so only the per-email limit (= AUTH_RATE_LIMIT_PER_MIN) applies.
    srv = server.start({ WORKERS = 8, AUTH_RATE_LIMIT_PER_MIN = LIMIT, RATE_LIMIT_PER_MIN = 1000 })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  local function register(from)
    local email, password = h.unique_email("conc"), h.unique_password()
    h.expect_status(req(srv, "POST", "/api/v1/auth/register", { from = from,
      body = { email = email, password = password, name = "C" } }), 201)
    return email, password
  end

  it("lets at most the limit of 36 concurrent wrong-password logins reach bcrypt", function()
    local email = register("127.0.1.1")
    inside_a_minute(20)
    local conns = {}
    for i = 1, 36 do
      conns[i] = connect(srv, "127.0.2." .. i)
    end
    local request = build("POST", "/api/v1/auth/login", {
      body = { email = email, password = "wrong-password-" .. h.random_word(6) } })
    for _, c in ipairs(conns) do
      assert(c:send(request))
    end
    local counts = {}
    for _, c in ipairs(conns) do
      local r = read(c)
      counts[r.status] = (counts[r.status] or 0) + 1
      if r.status == 429 then
        assert.are.equal("rate_limited", r.body.error.code)
      elseif r.status == 401 then
        assert.are.equal("invalid_credentials", r.body.error.code)
      end
    end
    local got = ("401: %s, 429: %s, other: %s"):format(tostring(counts[401]), tostring(counts[429]),
      tostring(36 - (counts[401] or 0) - (counts[429] or 0)))
    assert.are.equal(LIMIT, counts[401], got) -- bcrypt ran exactly LIMIT times
    assert.are.equal(36 - LIMIT, counts[429], got)
  end)

  it("does not count successful logins against the failure budget", function()
    local email, password = register("127.0.1.2")
    inside_a_minute(20)
    for i = 1, LIMIT + 2 do
      h.expect_status(req(srv, "POST", "/api/v1/auth/login", { from = "127.0.3." .. i,
        body = { email = email, password = password } }), 200)
    end
    -- Failures still count up to the limit, and then even the right password waits.
    for i = 1, LIMIT do
      h.expect_status(req(srv, "POST", "/api/v1/auth/login", { from = "127.0.4." .. i,
        body = { email = email, password = "wrong-" .. h.random_word(8) } }), 401)
    end
    local r = req(srv, "POST", "/api/v1/auth/login", { from = "127.0.5.1",
      body = { email = email, password = password } })
    assert.are.equal(429, r.status, r.raw)
  end)
end)
