-- Integration specs for the HTTP runtime (API.md §1, §9, §10) against a live
-- server: routing errors, body limits and parsing, validation details,
-- request ids, security and CORS headers, JSON encoding, handler failures
-- and transactions, the per-request query counter, health endpoints.
-- Uses the test-only routes of spec/fixtures/scripts/routes/zz_test.lua
-- (/api/v1/__test/...), which bin/test overlays onto the scripts.
local h = require "spec.integration.helper"

local null = h.null
local TEST = "/api/v1/__test"

local SECURITY_HEADERS = {
  ["content-security-policy"] = "default-src 'none'; frame-ancestors 'none'",
  ["strict-transport-security"] = "max-age=15552000; includeSubDomains",
  ["x-content-type-options"] = "nosniff",
  ["x-frame-options"] = "DENY",
  ["referrer-policy"] = "no-referrer",
  ["cross-origin-opener-policy"] = "same-origin",
  ["cross-origin-resource-policy"] = "same-origin",
  ["x-dns-prefetch-control"] = "off",
  ["x-permitted-cross-domain-policies"] = "none",
}

local function expect_security_headers(res, what)
  for name, value in pairs(SECURITY_HEADERS) do
    assert.are.equal(value, res.headers[name], ("%s: header %s"):format(what, name))
  end
  assert.is_nil(res.headers["x-powered-by"], what .. ": X-Powered-By present")
  local server = res.headers["server"]
  assert.is_truthy(server == nil or not server:find("%d"), what .. ": Server header with a version: "
    .. tostring(server))
  assert.is_string(res.headers["x-request-id"], what .. ": no X-Request-Id")
end

local function no_cors_headers(res, what)
  for name in pairs(res.headers) do
    assert.is_falsy(name:find("^access%-control%-"), what .. ": unexpected " .. name)
  end
end

describe("HTTP runtime", function()
  local s -- one user for the routes that need a token
  lazy_setup(function()
    s = h.session({ name = "Http Spec" })
  end)

  local function patch_me(body, opts)
    opts = opts or {}
    opts.body = body
    opts.token = s.access
    return h.call("PATCH", "/api/v1/auth/me", opts)
  end

  describe("routing", function()
    it("answers 404 not_found for unknown paths, with or without a token", function()
      for _, path in ipairs({ "/api/v1/nope", "/api/v1/auth/nope", "/nope", "/api/v2/auth/me",
        "/api/v1/auth/me/extra" }) do
        h.expect_error(h.call("GET", path), 404, "not_found")
        h.expect_error(h.call("GET", path, { token = s.access }), 404, "not_found")
        h.expect_error(h.call("GET", path, { token = "garbage" }), 404, "not_found")
        h.expect_error(h.call("POST", path, { body = {} }), 404, "not_found")
      end
    end)

    it("answers 405 method_not_allowed with an Allow header on a known path", function()
      local res = h.call("GET", "/api/v1/auth/login")
      h.expect_error(res, 405, "method_not_allowed")
      assert.is_string(res.headers["allow"])
      assert.is_truthy(res.headers["allow"]:find("POST", 1, true), res.headers["allow"])

      res = h.call("DELETE", "/api/v1/auth/me", { token = s.access })
      h.expect_error(res, 405, "method_not_allowed")
      local allow = {}
      for m in res.headers["allow"]:gmatch("[A-Z]+") do
        allow[m] = true
      end
      assert.is_true(allow.GET and allow.PATCH and true or false, res.headers["allow"])
      assert.is_nil(allow.DELETE)

      res = h.call("PUT", "/health")
      h.expect_error(res, 405, "method_not_allowed")
      assert.is_truthy(res.headers["allow"]:find("GET", 1, true))
    end)

    it("answers HEAD on a GET route like GET, without a body", function()
      local get = h.call("GET", "/health")
      local head = h.call("HEAD", "/health")
      h.expect_status(head, 200)
      assert.are.equal("", head.raw)
      expect_security_headers(head, "HEAD /health")
      assert.are.equal(get.headers["content-type"], head.headers["content-type"])
      head = h.call("HEAD", "/api/v1/auth/me", { token = s.access })
      h.expect_status(head, 200)
      assert.are.equal("", head.raw)
      head = h.call("HEAD", "/api/v1/auth/me")
      assert.are.equal(401, head.status)
    end)
  end)

  describe("request bodies", function()
    it("answers 413 payload_too_large over 1 MiB", function()
      local big = '{"a":"' .. string.rep("x", 1024 * 1024) .. '"}'
      h.expect_error(h.call("POST", TEST .. "/echo", { body = big }), 413, "payload_too_large")
      h.expect_error(h.call("POST", "/api/v1/auth/login", { body = big }), 413, "payload_too_large")
    end)

    it("takes a body just under 1 MiB", function()
      local value = string.rep("y", 1024 * 1024 - 64)
      local res = h.call("POST", TEST .. "/echo", { body = { a = value } })
      assert.are.equal(value, h.expect_status(res, 200).data.a)
    end)

    it("answers 415 unsupported_media_type for a body that is not application/json", function()
      local body = '{"email":"a@example.com","password":"x"}'
      for _, ct in ipairs({ "text/plain", "application/x-www-form-urlencoded", "application/jsonp",
        "multipart/form-data; boundary=x" }) do
        h.expect_error(h.call("POST", "/api/v1/auth/login", { body = body, headers = { ["Content-Type"] = ct } }),
          415, "unsupported_media_type")
      end
      h.expect_error(h.call("POST", "/api/v1/auth/login", { body = body, content_type = false }),
        415, "unsupported_media_type")
      -- Parameters and case are fine.
      h.expect_status(h.call("POST", TEST .. "/echo", { body = "{}",
        headers = { ["Content-Type"] = "Application/JSON; charset=utf-8" } }), 200)
    end)

    it("answers 400 invalid_json for malformed JSON and for non-objects", function()
      for _, raw in ipairs({ '{"a":', "{", '{"a" 1}', "{'a':1}", '{"a":1}}', "nul", '"just a string"',
        "42", "true", "null", "[]", '[{"a":1}]', "[1,2]" }) do
        local res = h.call("POST", TEST .. "/echo", { body = raw })
        h.expect_error(res, 400, "invalid_json")
        res = h.call("POST", "/api/v1/auth/login", { body = raw })
        h.expect_error(res, 400, "invalid_json")
      end
    end)

    it("counts an empty body under application/json as {}", function()
      local res = h.call("POST", TEST .. "/echo", { body = "" })
      h.expect_status(res, 200)
      assert.are.equal('{"data":{}}', res.raw)
      -- {} on login: a 422 naming the required fields, not a 400.
      h.expect_validation(h.call("POST", "/api/v1/auth/login", { body = "" }), { "email", "password" })
      -- And on PATCH: nothing to change.
      h.expect_status(patch_me(""), 200)
    end)
  end)

  describe("validation (422 validation_failed)", function()
    it("names every bad field in details: unknown, wrong type, too long", function()
      local res = patch_me({ name = 5, avatarUrl = "ftp://x.example/", bogus = 1, ["extra field"] = true })
      local e = h.expect_validation(res, { "name", "avatarUrl", "bogus", "extra field" })
      assert.are.equal(4, #e.details)
    end)

    it("counts lengths in Unicode characters, not bytes", function()
      local ok = string.rep("😀", 100) -- 400 bytes
      assert.are.equal(ok, h.expect_status(patch_me({ name = ok }), 200).data.name)
      h.expect_validation(patch_me({ name = string.rep("😀", 101) }), { "name" })
      h.expect_validation(patch_me({ name = string.rep("é", 101) }), { "name" })
      assert.are.equal(ok, h.expect_status(h.call("GET", "/api/v1/auth/me", { token = s.access }), 200).data.name)
    end)

    it("refuses a string containing U+0000", function()
      h.expect_validation(patch_me({ name = "a\0b" }), { "name" })
      h.expect_validation(patch_me('{"name":"nul\\u0000here"}'), { "name" })
      h.expect_validation(h.call("POST", "/api/v1/auth/register", { body = { email = h.unique_email(),
        password = h.unique_password(), name = "x\0" } }), { "name" })
    end)

    it("refuses invalid UTF-8", function()
      h.expect_validation(patch_me('{"name":"bad \xff\xfe utf8"}'), { "name" })
    end)
  end)

  describe("X-Request-Id", function()
    local function rid_of(value, path)
      local headers = value and { ["X-Request-Id"] = value } or nil
      return h.call("GET", path or "/health/live", { headers = headers })
    end

    it("echoes a sane client id, on success and on error answers", function()
      for _, id in ipairs({ "abc", "spec-req.1_ABC", string.rep("a", 128), "0", "A.B_C-d" }) do
        assert.are.equal(id, rid_of(id).headers["x-request-id"])
        assert.are.equal(id, rid_of(id, "/api/v1/nope").headers["x-request-id"])
      end
    end)

    it("generates one when none was sent, different every time", function()
      local a = rid_of(nil).headers["x-request-id"]
      local b = rid_of(nil).headers["x-request-id"]
      assert.is_string(a)
      assert.is_truthy(a:match("^[%w._-]+$") and #a >= 8 and #a <= 128, a)
      assert.are_not.equal(a, b)
    end)

    it("replaces insane ones with a generated id", function()
      for _, id in ipairs({ string.rep("a", 129), string.rep("b", 200), "has space", "semi;colon",
        "slash/id", "quote\"id", "tab\tid", "ünïcode" }) do
        local got = rid_of(id).headers["x-request-id"]
        assert.is_string(got)
        assert.are_not.equal(id, got)
        assert.is_truthy(got:match("^[%w._-]+$") and #got <= 128, got)
      end
    end)
  end)

  describe("security headers (§9)", function()
    it("are on success and on error answers of every kind", function()
      local big = '{"a":"' .. string.rep("x", 1024 * 1024 + 10) .. '"}'
      local cases = {
        { "200 /health", h.call("GET", "/health") },
        { "200 /health/live", h.call("GET", "/health/live") },
        { "200 /auth/me", h.call("GET", "/api/v1/auth/me", { token = s.access }) },
        { "204 logout", h.call("POST", "/api/v1/auth/logout", { token = h.login(s.email, s.password).accessToken }) },
        { "400", h.call("POST", TEST .. "/echo", { body = "[" }) },
        { "401", h.call("GET", "/api/v1/auth/me") },
        { "401 creds", h.call("POST", "/api/v1/auth/login", { body = { email = s.email, password = "Pw-wrong-" ..
          h.random_word(8) } }) },
        { "404", h.call("GET", "/api/v1/nope") },
        { "405", h.call("DELETE", "/health") },
        { "413", h.call("POST", TEST .. "/echo", { body = big }) },
        { "415", h.call("POST", TEST .. "/echo", { body = "{}", headers = { ["Content-Type"] = "text/plain" } }) },
        { "422", patch_me({ bogus = true }) },
        { "500", h.call("GET", TEST .. "/boom") },
        { "OPTIONS", h.call("OPTIONS", "/api/v1/auth/me", { headers = { Origin = "http://example.com",
          ["Access-Control-Request-Method"] = "GET" } }) },
      }
      for _, c in ipairs(cases) do
        expect_security_headers(c[2], c[1])
      end
    end)
  end)

  describe("CORS without CORS_ORIGINS (the test server's configuration)", function()
    it("sends no Access-Control-* headers, whatever the origin", function()
      for _, origin in ipairs({ "http://evil.example", "null", h.base }) do
        local res = h.call("GET", "/health", { headers = { Origin = origin } })
        h.expect_status(res, 200)
        no_cors_headers(res, "GET " .. origin)
        res = h.call("POST", "/api/v1/auth/login", { headers = { Origin = origin },
          body = { email = s.email, password = "Pw-wrong-" .. h.random_word(8) } })
        no_cors_headers(res, "POST " .. origin)
      end
    end)

    it("answers a preflight OPTIONS 204 without Access-Control-* headers", function()
      for _, path in ipairs({ "/api/v1/auth/me", "/api/v1/auth/login", "/health" }) do
        local res = h.call("OPTIONS", path, { headers = { Origin = "http://evil.example",
          ["Access-Control-Request-Method"] = "POST",
          ["Access-Control-Request-Headers"] = "authorization, content-type" } })
        assert.are.equal(204, res.status, path)
        assert.are.equal("", res.raw)
        no_cors_headers(res, "OPTIONS " .. path)
      end
    end)
  end)

  describe("JSON encoding", function()
    it("round-trips JSON null", function()
      local res = h.call("POST", TEST .. "/echo", { body = '{"a":null,"b":{"c":null},"n":[1,null,3],"s":"x"}' })
      local d = h.expect_status(res, 200).data
      assert.are.equal(null, d.a)
      assert.are.equal(null, d.b.c)
      assert.are.equal(null, d.n[2])
      assert.are.equal(3, d.n[3])
      assert.are.equal("x", d.s)
      assert.is_truthy(res.raw:find('"a":null', 1, true), res.raw)
      assert.is_truthy(res.raw:find('"c":null', 1, true), res.raw)
      assert.is_truthy(res.raw:find('[1,null,3]', 1, true), res.raw)
    end)

    it("round-trips strings with escapes and non-ASCII", function()
      local v = 'quote " backslash \\ slash / tab \t newline \n é 日本 😀'
      local d = h.expect_status(h.call("POST", TEST .. "/echo", { body = { v = v, big = 1234567, neg = -1.5 } }), 200)
        .data
      assert.are.equal(v, d.v)
      assert.are.equal(1234567, d.big)
      assert.are.equal(-1.5, d.neg)
    end)

    it("encodes empty arrays as [] and empty objects as {}", function()
      local res = h.call("GET", TEST .. "/shapes")
      local d = h.expect_status(res, 200).data
      assert.are.equal("fromDb,list,nothing,object,twoFromDb", h.keys(d))
      assert.is_truthy(res.raw:find('"list":[]', 1, true), res.raw)
      assert.is_truthy(res.raw:find('"object":{}', 1, true), res.raw)
      assert.is_truthy(res.raw:find('"fromDb":[]', 1, true), res.raw)
      assert.is_truthy(res.raw:find('"twoFromDb":["a","b"]', 1, true), res.raw)
      assert.is_truthy(res.raw:find('"nothing":null', 1, true), res.raw)
    end)
  end)

  describe("handler failures", function()
    local function expect_clean_500(status, body, raw)
      assert.are.equal(500, status, raw)
      assert.is_table(body, raw)
      assert.are.equal("error", h.keys(body))
      assert.are.equal("code,message", h.keys(body.error))
      assert.are.equal("internal", body.error.code)
      for _, leak in ipairs({ "zz_test", ".lua", "traceback", "nil value", "boom", "stack", "INSERT",
        "SELECT", "users", "/tmp", "scripts" }) do
        assert.is_falsy(raw:find(leak, 1, true), "500 body leaks " .. leak .. ": " .. raw)
      end
    end

    it("a Lua error gives a clean 500 internal with nothing internal in the body", function()
      local res = h.call("GET", TEST .. "/boom")
      expect_clean_500(res.status, res.body, res.raw)
      h.expect_error(res, 500, "internal")
      expect_security_headers(res, "500")
    end)

    it("every worker still serves after errors (sequential and concurrent)", function()
      -- Sequential: alternate failures and good requests.
      local workers = {}
      for _ = 1, 20 do
        local b = h.call("GET", TEST .. "/boom")
        expect_clean_500(b.status, b.body, b.raw)
        local w = h.call("GET", TEST .. "/worker")
        local d = h.expect_status(w, 200).data
        workers[d.worker] = true
      end
      -- Concurrent: enough failures at once that every worker gets some, then
      -- enough good requests at once that every worker serves some.
      for _ = 1, 3 do
        for _, r in ipairs(h.parallel(16, "GET", TEST .. "/boom")) do
          expect_clean_500(r.status, r.body, r.raw)
        end
        for _, r in ipairs(h.parallel(16, "GET", TEST .. "/worker")) do
          assert.are.equal(200, r.status, r.raw)
          workers[r.body.data.worker] = true
        end
      end
      -- Every worker must show up: TASKAPI_WORKERS of them if given (bin/test
      -- runs WORKERS=4), else at least two (more than one worker survived).
      local want = tonumber(os.getenv("TASKAPI_WORKERS") or "") or 2
      local function count()
        local n = 0
        for _ in pairs(workers) do
          n = n + 1
        end
        return n
      end
      for _ = 1, 20 do
        if count() >= want then
          break
        end
        for _, r in ipairs(h.parallel(16, "GET", TEST .. "/worker")) do
          assert.are.equal(200, r.status, r.raw)
          workers[r.body.data.worker] = true
        end
      end
      assert.is_true(count() >= want, ("only %d distinct workers answered, want %d"):format(count(), want))
      -- Database work still succeeds everywhere (no connection left mid-transaction).
      for _, r in ipairs(h.parallel(16, "GET", TEST .. "/shapes")) do
        assert.are.equal(200, r.status, r.raw)
      end
    end)

    it("an error inside db.tx rolls the transaction back, answers 500, leaves workers usable", function()
      local email = h.unique_email("boomtx")
      local res = h.call("POST", TEST .. "/boom-tx", { body = { email = email } })
      expect_clean_500(res.status, res.body, res.raw)
      assert.are.equal("0", h.psql("SELECT count(*) FROM users WHERE email = " .. h.sql_literal(email)))
      -- Concurrently on all workers, then the database is still fine for each.
      local emails = {}
      for i = 1, 12 do
        emails[i] = h.unique_email("boomtxp")
      end
      local results = h.parallel(12, "POST", TEST .. "/boom-tx", { body = function(i)
        return { email = emails[i] }
      end })
      for _, r in ipairs(results) do
        expect_clean_500(r.status, r.body, r.raw)
      end
      local list = {}
      for i, e in ipairs(emails) do
        list[i] = h.sql_literal(e)
      end
      assert.are.equal("0", h.psql("SELECT count(*) FROM users WHERE email IN (" .. table.concat(list, ",") .. ")"))
      for _, r in ipairs(h.parallel(16, "GET", TEST .. "/shapes")) do
        assert.are.equal(200, r.status, r.raw)
      end
      -- The address is free: registering it works.
      h.register_user({ email = email })
    end)

    it("logs the error with its location (the server log, not the answer)", function()
      local rid = "spec-boom-" .. h.random_word(10)
      h.call("GET", TEST .. "/boom", { headers = { ["X-Request-Id"] = rid } })
      local deadline, line = h.now() + 5, nil
      repeat
        for l in h.server_log():gmatch("[^\n]+") do
          if l:find(rid, 1, true) and l:find("zz_test.lua:%d+") then
            line = l
          end
        end
        if not line then
          h.sleep(0.1)
        end
      until line or h.now() > deadline
      assert.is_string(line, "no log line with the request id and the error's location")
    end)
  end)

  describe("per-request query counter", function()
    it("counts this request's SQL round trips only (the fixture runs 2)", function()
      for _ = 1, 3 do
        local d = h.expect_status(h.call("GET", TEST .. "/queries", { token = s.access }), 200).data
        assert.are.equal(2, d.queries)
      end
      -- The fixture needs a token.
      h.expect_error(h.call("GET", TEST .. "/queries"), 401, "unauthorized")
    end)
  end)

  describe("health (§9)", function()
    it("GET /health answers 200 {status, checks{database, redis, replica}, version, uptimeSeconds}", function()
      local res = h.call("GET", "/health")
      local b = h.expect_status(res, 200)
      assert.are.equal("checks,status,uptimeSeconds,version", h.keys(b))
      assert.are.equal("ok", b.status)
      assert.are.equal("database,redis,replica", h.keys(b.checks))
      assert.are.equal("disabled", b.checks.replica) -- no DATABASE_READ_URL (replica_spec has one)
      assert.are.equal("ok", b.checks.database)
      assert.is_truthy(b.checks.redis == "ok" or b.checks.redis == "disabled", tostring(b.checks.redis))
      assert.is_string(b.version)
      assert.is_true(#b.version > 0)
      assert.is_number(b.uptimeSeconds)
      assert.is_truthy(res.raw:find('"uptimeSeconds":%d+[,}]'), "uptimeSeconds is not a whole number: " .. res.raw)
      assert.is_truthy(res.headers["content-type"]:find("application/json", 1, true))
    end)

    it("GET /health/live and /health/ready answer 200", function()
      local live = h.call("GET", "/health/live")
      assert.are.equal("ok", h.expect_status(live, 200).status)
      local ready = h.call("GET", "/health/ready")
      local b = h.expect_status(ready, 200)
      assert.are.equal("ready", b.status)
      assert.are.equal("ok", b.checks.database)
    end)

    it("need no token and ignore a bad one", function()
      for _, path in ipairs({ "/health", "/health/live", "/health/ready" }) do
        h.expect_status(h.call("GET", path, { token = "garbage" }), 200)
      end
    end)
  end)

  describe("secrets", function()
    it("no answer carried a password sent or a token received earlier", function()
      assert.are.same({}, h.leaks())
    end)

    it("the server log holds none of them", function()
      assert.are.same({}, h.secrets_in_log())
    end)
  end)
end)
