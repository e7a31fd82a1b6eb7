-- Tokens and identity (issue 8): an access token is only as good as the
-- claims and the user behind it. Time claims (nbf, iat beyond the clock
-- skew), a sub that is not a UUID, a user deleted or disabled since the
-- token was signed, a password changed since (through this instance, and
-- through another one sharing Redis), all answered 401 unauthorized on
-- every authenticated route.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local socket = require "socket"
local cjson = require "cjson"

local AUTH = "/api/v1/auth"
local SKEW = 30 -- TK_AUTH_CLOCK_SKEW (runtime/auth/auth.h), documented in API.md §2

local function uuid()
  local r = h.random_word(32):gsub("[^%x]", "a")
  return ("%s-%s-4%s-a%s-%s"):format(r:sub(1, 8), r:sub(9, 12), r:sub(14, 16), r:sub(18, 20),
    r:sub(21, 32))
end

-- One request to a server of this spec's own ({port}) or the shared one (nil).
local function call(srv, method, path, opts)
  opts = opts or {}
  if srv == nil then
    return h.call(method, path, opts)
  end
  local c = assert(socket.tcp())
  c:settimeout(15)
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
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
  local data = assert(c:receive("*a"))
  c:close()
  local raw = data:match("\r\n\r\n(.*)$") or ""
  local ok, decoded = pcall(cjson.decode, raw)
  return { status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)")), body = ok and decoded or nil, raw = raw }
end

local function session(srv)
  local email, password = h.unique_email("id"), h.unique_password()
  local r = call(srv, "POST", AUTH .. "/register", { body = { email = email, password = password, name = "Id" } })
  assert.are.equal(201, r.status, r.raw)
  r = call(srv, "POST", AUTH .. "/login", { body = { email = email, password = password } })
  assert.are.equal(200, r.status, r.raw)
  return { email = email, password = password, id = r.body.data.user.id, access = r.body.data.accessToken }
end

local function expect_401(res, what)
  assert.are.equal(401, res.status, (what or "") .. ": " .. tostring(res.raw))
  assert.are.equal("unauthorized", res.body and res.body.error and res.body.error.code, res.raw)
end

-- Polls fn() until it returns true, for at most `seconds`.
local function eventually(seconds, fn)
  local deadline = socket.gettime() + seconds
  repeat
    if fn() then
      return true
    end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return fn()
end

describe("access token claims", function()
  local s, kid

  lazy_setup(function()
    s = h.session({ name = "Claims" })
    kid = h.jwt_parts(s.access).kid
  end)

  local function token(overrides)
    local now = os.time()
    local c = { sub = s.user.id, role = "user", iat = now - 5, exp = now + 600, jti = uuid() }
    for k, v in pairs(overrides) do
      c[k] = v
    end
    return h.jwt_sign({ alg = "HS256", typ = "JWT", kid = kid }, c, h.jwt_secret())
  end

  local function me(t)
    return h.call("GET", AUTH .. "/me", { token = t })
  end

  it("refuses a token that is not valid yet (nbf in the future); accepts one whose nbf has passed", function()
    local now = os.time()
    h.expect_status(me(token({ nbf = now - 5 })), 200)
    expect_401(me(token({ nbf = now + 120 })), "nbf +120 s")
    expect_401(me(token({ nbf = now + 3600, iat = now })), "nbf +1 h")
    expect_401(me(token({ nbf = "0" })), "nbf a string")
  end)

  it("refuses a token issued in the future beyond the clock skew; accepts one within it", function()
    local now = os.time()
    h.expect_status(me(token({ iat = now + 5 })), 200)
    expect_401(me(token({ iat = now + SKEW + 60 })), "iat beyond the skew")
    expect_401(me(token({ iat = now + 86400, exp = now + 86400 + 600 })), "iat tomorrow")
  end)

  it("answers 401 unauthorized, not 500, for a sub that is not a UUID, on /auth/me and /projects", function()
    for _, sub in ipairs({ "42", "admin", "x' OR '1'='1", s.user.id .. "0", s.user.id:upper():gsub("-", ""),
      "{" .. s.user.id .. "}", ("a"):rep(63) }) do
      local t = token({ sub = sub })
      expect_401(me(t), "sub " .. sub .. " on /auth/me")
      expect_401(h.call("GET", "/api/v1/projects", { token = t }), "sub " .. sub .. " on /projects")
    end
  end)
end)

describe("a password change ends older access tokens", function()
  it("refuses the old token at once after change-password; a new login works", function()
    local s = h.session({ name = "Pw Change" })
    local other = h.login(s.email, s.password).accessToken -- a second device
    h.expect_status(h.call("GET", "/api/v1/projects", { token = other }), 200) -- now cached
    local new = h.unique_password()
    h.expect_status(h.call("POST", AUTH .. "/change-password", { token = s.access,
      body = { currentPassword = s.password, newPassword = new } }), 204)
    for _, t in ipairs({ s.access, other }) do
      expect_401(h.call("GET", AUTH .. "/me", { token = t }), "old token on /auth/me")
      expect_401(h.call("GET", "/api/v1/projects", { token = t }), "old token on /projects")
    end
    local fresh = h.login(s.email, new).accessToken
    h.expect_status(h.call("GET", AUTH .. "/me", { token = fresh }), 200)
    h.expect_status(h.call("GET", "/api/v1/projects", { token = fresh }), 200)
  end)

  it("refuses the old token at once after reset-password", function()
    local s = h.session({ name = "Pw Reset" })
    h.expect_status(h.call("GET", AUTH .. "/me", { token = s.access }), 200)
    h.expect_status(h.call("POST", AUTH .. "/forgot-password", { body = { email = s.email } }), 202)
    local t = assert(h.mail_token(s.email, "reset_password"), "no reset mail")
    local new = h.unique_password()
    h.expect_status(h.call("POST", AUTH .. "/reset-password", { body = { token = t, password = new } }), 204)
    expect_401(h.call("GET", AUTH .. "/me", { token = s.access }), "old token after a reset")
    h.expect_status(h.call("GET", AUTH .. "/me", { token = h.login(s.email, new).accessToken }), 200)
  end)
end)

describe("the user behind a token (own server, USER_CACHE_TTL_MS=200)", function()
  local srv

  setup(function()
    srv = server.start({ USER_CACHE_TTL_MS = 200, RATE_LIMIT_PER_MIN = 100000,
      AUTH_RATE_LIMIT_PER_MIN = 100000 })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  -- Every route the OpenAPI document says takes a bearer token, as
  -- {method, path} with its parameters filled in.
  local function authenticated_routes()
    local r = call(srv, "GET", "/api/v1/openapi.json")
    assert.are.equal(200, r.status)
    local list = {}
    for path, ops in pairs(r.body.paths) do
      for method, op in pairs(ops) do
        local sec = type(op) == "table" and op.security
        if type(sec) == "table" and type(sec[1]) == "table" and sec[1].bearerAuth then
          list[#list + 1] = { method:upper(), (path:gsub("{[^}]+}", uuid())) }
        end
      end
    end
    assert.is_true(#list >= 20, "only " .. #list .. " authenticated routes in the OpenAPI document")
    return list
  end

  it("refuses a deleted user's token on every authenticated route within the cache TTL", function()
    local s = session(srv)
    assert.are.equal(200, call(srv, "GET", "/api/v1/projects", { token = s.access }).status)
    h.psql("DELETE FROM users WHERE id = " .. h.sql_literal(s.id))
    assert.is_true(eventually(5, function()
      return call(srv, "GET", "/api/v1/projects", { token = s.access }).status == 401
    end), "the deleted user's token still reads /projects")
    for _, rt in ipairs(authenticated_routes()) do
      local method, path = rt[1], rt[2]
      local body = (method == "POST" or method == "PUT" or method == "PATCH") and {} or nil
      expect_401(call(srv, method, path, { token = s.access, body = body }), method .. " " .. path)
    end
  end)

  -- Runs `taskapi users VERB EMAIL` on the suite's database.
  local function users_cli(verb, email)
    local q = function(v) return "'" .. tostring(v):gsub("'", "'\\''") .. "'" end
    local p = assert(io.popen(("DATABASE_URL=%s %s users %s %s 2>&1"):format(q(os.getenv("DATABASE_URL")),
      q(os.getenv("TASKAPI_BIN")), verb, q(email))))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok == true, "taskapi users " .. verb .. ": " .. out)
    return out
  end

  it("refuses a disabled user's token and login (taskapi users disable); enable restores both", function()
    local s = session(srv)
    assert.are.equal(200, call(srv, "GET", AUTH .. "/me", { token = s.access }).status)
    assert.truthy(users_cli("disable", s.email):find("is disabled", 1, true))
    assert.is_true(eventually(5, function()
      return call(srv, "GET", AUTH .. "/me", { token = s.access }).status == 401
    end), "the disabled user's token still works")
    expect_401(call(srv, "GET", "/api/v1/projects", { token = s.access }))
    local r = call(srv, "POST", AUTH .. "/login", { body = { email = s.email, password = s.password } })
    assert.are.equal(401, r.status, r.raw)
    assert.are.equal("invalid_credentials", r.body.error.code)
    assert.truthy(users_cli("enable", s.email):find("is enabled", 1, true))
    assert.is_true(eventually(5, function()
      return call(srv, "GET", AUTH .. "/me", { token = s.access }).status == 200
    end), "the enabled user's token is still refused")
  end)
end)

describe("a password change through another instance (shared Redis)", function()
  local redis = os.getenv("TEST_REDIS_URL")
  local a, b

  setup(function()
    if redis then
      -- A TTL of ten minutes: only the invalidation message can make b see it.
      -- Limits out of the way: the counters are shared through Redis with
      -- every other spec's servers, all on 127.0.0.1.
      local env = { REDIS_URL = redis, USER_CACHE_TTL_MS = 600000, RATE_LIMIT_PER_MIN = 100000,
        AUTH_RATE_LIMIT_PER_MIN = 100000 }
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

  it("ends the old token on every instance at once", function()
    if not redis then
      pending("TEST_REDIS_URL is not set")
      return
    end
    local s = session(a)
    assert.are.equal(200, call(b, "GET", AUTH .. "/me", { token = s.access }).status) -- b caches the user
    -- A change b is not told about stays unseen (cached) ...
    h.psql("UPDATE users SET token_version = token_version + 1 WHERE id = " .. h.sql_literal(s.id))
    assert.are.equal(200, call(b, "GET", AUTH .. "/me", { token = s.access }).status)
    h.psql("UPDATE users SET token_version = token_version - 1 WHERE id = " .. h.sql_literal(s.id))
    -- ... a password change through a reaches b through Redis.
    local r = call(a, "POST", AUTH .. "/change-password", { token = s.access,
      body = { currentPassword = s.password, newPassword = h.unique_password() } })
    assert.are.equal(204, r.status, r.raw)
    assert.is_true(eventually(5, function()
      return call(b, "GET", AUTH .. "/me", { token = s.access }).status == 401
    end), "instance b still accepts the token after a password change on a")
    expect_401(call(b, "GET", "/api/v1/projects", { token = s.access }))
  end)
end)
