-- Unit specs for scripts/lib/dispatch.lua: body parsing and validation,
-- query validation, HTTP errors raised by handlers, bugs answered 500 (and
-- logged), missing statuses, 204s and response headers. The tk.* modules
-- exist only inside the server, so stand-ins are preloaded here: the log one
-- records its calls; tk.db and tk.auth (reached through lib.idempotency) raise
-- if anything here ever touches them.
-- luacheck: std lua54+busted

local logged = {}

local function unavailable(name)
  return function()
    error(name .. " is not available in unit specs", 2)
  end
end

package.preload["tk.db"] = function()
  local m = {}
  for _, f in ipairs({ "query", "tx", "after_commit", "in_tx", "query_count" }) do
    m[f] = unavailable("tk.db." .. f)
  end
  return m
end

package.preload["tk.metrics"] = function()
  return { hook_failure = function() end }
end

package.preload["tk.auth"] = function()
  return setmetatable({}, { __index = function(_, k) return unavailable("tk.auth." .. k) end })
end

package.preload["tk.log"] = function()
  local function recorder(level)
    return function(fmt, ...)
      logged[#logged + 1] = { level = level, msg = fmt:format(...) }
    end
  end
  return { debug = recorder("debug"), info = recorder("info"), warn = recorder("warn"),
           error = recorder("error") }
end

package.preload["tk.runtime"] = function()
  return {
    traceback = function(msg, level)
      return ("%s\nstack traceback:\n\t(stand-in, level %s)"):format(tostring(msg), tostring(level))
    end,
    array_mt = { __name = "json.array" },
  }
end

local dispatch = require("lib.dispatch")
local errors = require("lib.errors")
local json = require("lib.json")
local cjson = require("cjson")

local INTERNAL = { error = { code = "internal", message = "internal server error" } }

-- A route with the given handler and options (body/query schemas).
local function route(handler, opts)
  local r = { method = "POST", path = "/things", where = "routes/things.lua:12", handler = handler }
  for k, v in pairs(opts or {}) do r[k] = v end
  return r
end

-- Dispatches one request to a single route; returns status, decoded body
-- (nil for an empty one), raw body and headers.
local function call(r, req)
  req.method = req.method or "POST"
  req.query = req.query or {}
  local status, body, headers = dispatch.new({ r })(1, req)
  local decoded = nil
  if body ~= nil and body ~= "" then decoded = cjson.decode(body) end
  return status, decoded, body, headers
end

local function echo(req)
  return 200, { body = req.body, query = req.query }
end

local THING = {
  type = "object",
  properties = {
    title = { type = "string", maxLength = 20 },
    done = { type = "boolean", default = false },
  },
}

before_each(function()
  for i = #logged, 1, -1 do logged[i] = nil end
end)

describe("dispatch: the request body", function()
  it("answers 400 invalid_json for malformed JSON", function()
    local reached = false
    local status, b = call(route(function() reached = true end), { body_raw = '{"title": ' })
    assert.equal(400, status)
    assert.equal("invalid_json", b.error.code)
    assert.truthy(b.error.message:find("^request body is not valid JSON: "), b.error.message)
    assert.is_false(reached)
    assert.equal(0, #logged)
  end)

  it("answers 400 invalid_json for a JSON array, string or number body", function()
    for _, raw in ipairs({ "[1, 2]", "  []", '"text"', "5", "null", "true" }) do
      local status, b = call(route(echo), { body_raw = raw })
      assert.equal(400, status, raw)
      assert.equal("invalid_json", b.error.code, raw)
      assert.equal("request body must be a JSON object", b.error.message, raw)
    end
  end)

  it("validates an empty or blank body as {}", function()
    for _, raw in ipairs({ "", "   \n\t" }) do
      local status, b = call(route(echo, { body = THING }), { body_raw = raw })
      assert.equal(200, status)
      assert.same({ done = false }, b.body)
    end
    local status, b = call(route(echo, { body = THING }), {})
    assert.equal(200, status)
    assert.same({ done = false }, b.body)
  end)

  it("gives the handler the cleaned body and drops body_raw", function()
    local seen
    local status = call(route(function(req)
      seen = req
      return 200, {}
    end, { body = THING }), { body_raw = '{"title": "  Milk  ", "done": true}' })
    assert.equal(200, status)
    assert.equal(true, seen.body.done)
    assert.is_string(seen.body.title)
    assert.is_nil(seen.body_raw)
  end)

  it("answers 422 validation_failed with details for an unknown field", function()
    local reached = false
    local status, b = call(route(function() reached = true end, { body = THING }),
      { body_raw = '{"title": "x", "colour": "red"}' })
    assert.equal(422, status)
    assert.equal("validation_failed", b.error.code)
    assert.same({ { field = "colour", message = "is not allowed" } }, b.error.details)
    assert.is_false(reached)
  end)

  it("refuses any field on a route without a body schema", function()
    local status, b = call(route(echo), { body_raw = '{"x": 1}' })
    assert.equal(422, status)
    assert.same({ { field = "x", message = "is not allowed" } }, b.error.details)
  end)

  it("does not parse bodies of GET requests", function()
    local seen
    local status = call(route(function(req)
      seen = req
      return 200, {}
    end), { method = "GET", body_raw = "not json" })
    assert.equal(200, status)
    assert.is_nil(seen.body)
    assert.is_nil(seen.body_raw)
  end)
end)

describe("dispatch: the query string", function()
  local Q = { type = "object", properties = { limit = { type = "integer", minimum = 1 } } }

  it("answers 400 invalid_parameter when the query fails its schema", function()
    local status, b = call(route(echo, { query = Q }), { method = "GET", query = { limit = "abc" } })
    assert.equal(400, status)
    assert.equal("invalid_parameter", b.error.code)
    assert.equal("invalid query parameter", b.error.message)
    assert.equal(1, #b.error.details)
    assert.equal("limit", b.error.details[1].field)
  end)

  it("answers 400 for an unknown query parameter", function()
    local status, b = call(route(echo, { query = Q }), { method = "GET", query = { nope = "1" } })
    assert.equal(400, status)
    assert.equal("invalid_parameter", b.error.code)
  end)

  it("coerces query values for the handler", function()
    local seen
    local status = call(route(function(req)
      seen = req.query
      return 200, {}
    end, { query = Q }), { method = "GET", query = { limit = "5" } })
    assert.equal(200, status)
    assert.equal(5, seen.limit)
    assert.equal("integer", math.type(seen.limit))
  end)

  it("passes the query through untouched without a schema", function()
    local q = { anything = "goes" }
    local seen
    call(route(function(req)
      seen = req.query
      return 200, {}
    end), { method = "GET", query = q })
    assert.equal(q, seen)
  end)
end)

describe("dispatch: handler errors", function()
  it("answers an errors.raise with its status and the contract's shape", function()
    local d = { { field = "email", message = "already taken" } }
    local status, b = call(route(function() errors.raise(409, "email_taken", "taken", d) end), {})
    assert.equal(409, status)
    assert.same({ error = { code = "email_taken", message = "taken", details = d } }, b)
    assert.equal(0, #logged)
  end)

  it("answers a shorthand error without a details key", function()
    local status, b, raw = call(route(function() errors.not_found() end), {})
    assert.equal(404, status)
    assert.same({ error = { code = "not_found", message = "no such resource" } }, b)
    assert.falsy(raw:find("details", 1, true))
  end)

  it("answers 500 internal for a plain error, and logs it", function()
    local status, b = call(route(function() error("boom: secret detail") end), {})
    assert.equal(500, status)
    assert.same(INTERNAL, b)
    assert.equal(1, #logged)
    assert.equal("error", logged[1].level)
    assert.truthy(logged[1].msg:find("boom: secret detail", 1, true), logged[1].msg)
    assert.truthy(logged[1].msg:find("POST /things", 1, true), logged[1].msg)
    assert.truthy(logged[1].msg:find("stack traceback", 1, true), logged[1].msg)
  end)

  it("never leaks the error text to the client", function()
    local _, _, raw = call(route(function() error("boom: secret detail") end), {})
    assert.falsy(raw:find("secret", 1, true))
  end)

  it("answers 500 for a non-string error value, and logs it", function()
    local status, b = call(route(function() error({ not_an = "http error" }) end), {})
    assert.equal(500, status)
    assert.same(INTERNAL, b)
    assert.equal(1, #logged)
  end)

  it("answers 500 for a runtime error in the handler", function()
    local status, b = call(route(function(req) return req.nope.field end), {})
    assert.equal(500, status)
    assert.same(INTERNAL, b)
    assert.equal(1, #logged)
    assert.truthy(logged[1].msg:find("nope", 1, true), logged[1].msg)
  end)

  it("answers 500 when the handler returns no status, and logs where", function()
    for _, h in ipairs({ function() end, function() return "200", {} end, function() return nil, {} end }) do
      for i = #logged, 1, -1 do logged[i] = nil end
      local status, b = call(route(h), {})
      assert.equal(500, status)
      assert.same(INTERNAL, b)
      assert.equal(1, #logged)
      assert.truthy(logged[1].msg:find("no status", 1, true), logged[1].msg)
      assert.truthy(logged[1].msg:find("routes/things.lua:12", 1, true), logged[1].msg)
    end
  end)
end)

describe("dispatch: responses", function()
  it("encodes the body as JSON", function()
    local status, b, raw, headers = call(route(function()
      return 201, { id = 7, tags = json.array() }
    end), {})
    assert.equal(201, status)
    assert.same({ id = 7, tags = {} }, b)
    assert.truthy(raw:find('"tags":[]', 1, true), raw)
    assert.is_nil(headers)
  end)

  it("sends an empty body for 204, whatever the handler returned", function()
    local status, b, raw = call(route(function() return 204, { ignored = true } end), {})
    assert.equal(204, status)
    assert.is_nil(b)
    assert.equal("", raw)
  end)

  it("sends an empty body when the handler returns none", function()
    local status, _, raw = call(route(function() return 202 end), {})
    assert.equal(202, status)
    assert.equal("", raw)
  end)

  it("passes headers through", function()
    local h = { Location = "/api/v1/things/7", ETag = '"3"' }
    local status, _, _, headers = call(route(function() return 201, { id = 7 }, h end), {})
    assert.equal(201, status)
    assert.equal(h, headers)
    local s204, _, raw204, h204 = call(route(function() return 204, nil, h end), {})
    assert.equal(204, s204)
    assert.equal("", raw204)
    assert.equal(h, h204)
  end)

  it("answers 500 when the body cannot be encoded, and logs it", function()
    local status, b = call(route(function() return 200, { f = function() end } end), {})
    assert.equal(500, status)
    assert.same(INTERNAL, b)
    assert.equal(1, #logged)
    assert.truthy(logged[1].msg:find("POST /things", 1, true), logged[1].msg)
  end)

  it("ignores Idempotency-Key on unauthenticated requests", function()
    local calls = 0
    local h = function()
      calls = calls + 1
      return 201, { n = calls }
    end
    for i = 1, 2 do
      local status, b = call(route(h), { headers = { ["idempotency-key"] = "k-1" } })
      assert.equal(201, status)
      assert.same({ n = i }, b)
    end
    assert.equal(2, calls)
  end)
end)

describe("dispatch.check", function()
  it("accepts valid schemas", function()
    assert.has_no.errors(function() dispatch.check({ route(echo, { body = THING }) }) end)
  end)

  it("raises file:line and the route for an invalid schema", function()
    local ok, err = pcall(dispatch.check, { route(echo, { body = { type = "nonsense" } }) })
    assert.is_false(ok)
    assert.truthy(err:find("^routes/things.lua:12: body schema of POST /things: "), err)
  end)
end)

describe("dispatch: constant routes", function()
  local function constant(handler, extra)
    local r = route(handler, { method = "GET", path = "/health/x", constant = true, rate = {} })
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
  end

  it("caches the encoded answer of a constant route when dispatch is built", function()
    local calls = 0
    local r = constant(function()
      calls = calls + 1
      return 200, { status = "ok", list = json.array({}) }
    end)
    dispatch.new({ r })
    assert.equal(1, calls)
    assert.equal(200, r.constant_status)
    assert.same({ status = "ok", list = {} }, cjson.decode(r.constant_body))
    assert.truthy(r.constant_body:find('"list":[]', 1, true))
  end)

  it("caches nothing for a route with rate-limit buckets (every request must count)", function()
    local r = constant(function() return 200, {} end,
      { rate = { { bucket = "general", limit = 5, window = 60, per = "user" } } })
    dispatch.new({ r })
    assert.is_nil(r.constant_body)
    assert.is_nil(r.constant_status)
  end)

  it("caches nothing for a route that is not constant", function()
    local r = route(function() return 200, {} end, { method = "GET" })
    dispatch.new({ r })
    assert.is_nil(r.constant_body)
  end)

  it("refuses a constant answer that is not a 2xx without headers, naming the route", function()
    for _, handler in ipairs({
      function() return 503, { status = "down" } end,
      function() return 200, {}, { ["X-Thing"] = "1" } end,
      function() error("boom") end,
    }) do
      local ok, err = pcall(dispatch.new, { constant(handler) })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("routes/things.lua:12: constant route GET /health/x", 1, true),
        tostring(err))
    end
  end)
end)

describe("route: the constant option", function()
  local rt = require("tk.runtime") -- the stand-in above, which has no `where`
  rt.where = rt.where or function() return "spec:1" end
  local lroute = require("lib.route")

  it("accepts a GET route without auth, parameters or schemas", function()
    local g = lroute.group("/health")
    local r = g:get("/live", { auth = "none", constant = true }, function() return 200, {} end)
    assert.is_true(r.constant)
  end)

  it("refuses constant on anything else", function()
    local g = lroute.group("/api/v1")
    local h = function() return 200, {} end
    for _, case in ipairs({
      { "post", "/x", { auth = "none", constant = true } },
      { "get", "/x", { constant = true } },
      { "get", "/x/:id", { auth = "none", constant = true } },
      { "get", "/x", { auth = "none", constant = true, query = { type = "object" } } },
      { "get", "/x", { auth = "none", constant = "yes" } },
    }) do
      local ok, err = pcall(g[case[1]], g, case[2], case[3], h)
      assert.is_false(ok, case[2])
      assert.truthy(tostring(err):find("constant", 1, true), tostring(err))
    end
  end)
end)
