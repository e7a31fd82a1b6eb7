-- Constant routes (lib.route's `constant = true`, README "Request path"):
-- GET /health/live and the fixture GET /health/__constant are answered by
-- the C runtime on the HTTP thread from the answer lib.dispatch cached for
-- the generation; a constant route with rate-limit buckets, and every
-- route when a plugin has before/after hooks, takes the normal path
-- through a Lua worker. The test servers run with TASKAPI_DEBUG_QUERIES=1,
-- whose X-Lua-Allocs header tells the paths apart: "0" from the cache (no
-- Lua ran), more from a worker. Fixture routes:
-- spec/fixtures/scripts/routes/zz_constant.lua.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local socket = require "socket"

local SECURITY = {
  "content-security-policy", "strict-transport-security", "x-content-type-options",
  "x-frame-options", "referrer-policy", "cross-origin-opener-policy",
  "cross-origin-resource-policy",
}

local function wait_for(seconds, fn)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    local v = fn()
    if v then
      return v
    end
    socket.sleep(0.1)
  end
  return nil
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("constant routes", function()
  describe("on the test server (no plugin request hooks)", function()
    it("answer GET /health/live from the cache, with the usual headers", function()
      local status, body, headers, raw = h.request("GET", "/health/live",
        { headers = { ["X-Request-Id"] = "constant-spec-1" } })
      assert.are.equal(200, status)
      assert.are.equal('{"status":"ok"}', raw)
      assert.are.same({ status = "ok" }, body)
      assert.are.equal("application/json; charset=utf-8", headers["content-type"])
      assert.are.equal("constant-spec-1", headers["x-request-id"])
      for _, name in ipairs(SECURITY) do
        assert.is_truthy(headers[name], name)
      end
      if headers["x-lua-allocs"] then -- TASKAPI_DEBUG_QUERIES=1 (bin/test sets it)
        assert.are.equal("0", headers["x-lua-allocs"])
        assert.are.equal("0", headers["x-query-count"])
      end
    end)

    it("answer the bytes the handler's answer encodes to, every time", function()
      local first
      for _ = 1, 5 do
        local status, body, headers, raw = h.request("GET", "/health/__constant")
        assert.are.equal(200, status)
        assert.are.same({ kind = "constant", list = {}, text = "a/b <é>" }, body)
        assert.is_truthy(raw:find('"list":[]', 1, true), raw) -- an empty array stays []
        first = first or raw
        assert.are.equal(first, raw)
        if headers["x-lua-allocs"] then
          assert.are.equal("0", headers["x-lua-allocs"])
        end
      end
    end)

    it("answer HEAD with the headers and no body", function()
      local status, _, headers, raw = h.request("HEAD", "/health/live")
      assert.are.equal(200, status)
      assert.are.equal("", raw)
      assert.are.equal("application/json; charset=utf-8", headers["content-type"])
    end)

    it("still write the access log line and count the request in the metrics", function()
      local function count()
        local _, _, _, text = h.request("GET", "/metrics")
        local n = text:match('taskapi_http_requests_total{method="GET",route="/health/__constant",'
          .. 'status="200"} (%d+)')
        return tonumber(n or "0")
      end
      local before = count()
      local rid = "constantlog" .. tostring(os.time()) -- no pattern magic characters
      assert.are.equal(200, (h.request("GET", "/health/__constant", { headers = { ["X-Request-Id"] = rid } })))
      assert.are.equal(before + 1, count())
      assert.is_truthy(wait_for(10, function()
        return h.server_log():find(rid .. "[^\n]*GET /health/__constant 200")
      end), "no access log line for " .. rid)
    end)

    it("take the normal path when the route has rate-limit buckets", function()
      local status, body, headers = h.request("GET", "/api/v1/__constant/limited")
      assert.are.equal(200, status)
      assert.are.same({ kind = "limited" }, body)
      assert.is_truthy(headers["ratelimit-limit"], "a limited route counts every request")
      if headers["x-lua-allocs"] then
        assert.is_true(tonumber(headers["x-lua-allocs"]) > 0)
      end
    end)

    it("keep other methods and unknown paths as they were (405, 404)", function()
      local status, _, headers = h.request("POST", "/health/live", { body = {} })
      assert.are.equal(405, status)
      assert.is_truthy(headers["allow"]:find("GET", 1, true))
      assert.are.equal(404, (h.request("GET", "/health/live/x")))
    end)
  end)

  describe("on a server of their own", function()
    local srv

    after_each(function()
      if srv then
        srv.stop()
        srv = nil
      end
    end)

    it("take the normal path for every request when a plugin has request hooks", function()
      srv = server.start({ PLUGINS = "z_high", PLUGINS_DIR = "spec/fixtures/plugins",
        TASKAPI_DEBUG_QUERIES = 1 })
      local status, body, headers = h.request("GET", srv.url .. "/health/live")
      assert.are.equal(200, status)
      assert.are.same({ status = "ok" }, body)
      assert.is_true(tonumber(headers["x-lua-allocs"]) > 0)
      -- z_high's before hook answers 403 to X-Plugin-Deny: it ran.
      status = h.request("GET", srv.url .. "/health/live", { headers = { ["X-Plugin-Deny"] = "1" } })
      assert.are.equal(403, status)
    end)

    it("serve the new answer after a reload (the cache is per generation)", function()
      srv = server.start({ TASKAPI_DEBUG_QUERIES = 1 })
      local file = srv.dir .. "/scripts/routes/zz_constant_version.lua"
      local function version(v)
        write(file, ([[
local route = require "lib.route"
local r = route.group("/health")
r:get("/__version", { auth = "none", constant = true }, function()
  return 200, { version = %d }
end)
return r
]]):format(v))
        os.execute("kill -HUP " .. srv.pid)
        local headers = wait_for(60, function()
          local status, body, hdrs = h.request("GET", srv.url .. "/health/__version")
          if status == 200 and body.version == v then
            return hdrs
          end
        end)
        assert.is_truthy(headers, "version " .. v .. " never answered")
        assert.are.equal("0", headers["x-lua-allocs"])
      end
      version(1)
      version(2)
      for _ = 1, 5 do
        local _, body = h.request("GET", srv.url .. "/health/__version")
        assert.are.same({ version = 2 }, body)
      end
    end)
  end)

  describe("a route that cannot be constant", function()
    it("is a load error (taskapi check)", function()
      local dir = os.tmpname()
      os.remove(dir)
      local scripts = os.getenv("TASKAPI_SCRIPTS_DIR") or "scripts"
      assert(os.execute(("mkdir -p '%s' && cp -r '%s' '%s/scripts'"):format(dir, scripts, dir)))
      write(dir .. "/scripts/routes/zz_bad_constant.lua", [[
local route = require "lib.route"
local r = route.group("/api/v1")
r:get("/__bad/:id", { auth = "none", constant = true }, function() return 200, {} end)
return r
]])
      local p = io.popen(("env -u PLUGINS -u PLUGINS_CONFIG SCRIPTS_DIR='%s/scripts' '%s' check 2>&1"):format(dir,
        assert(os.getenv("TASKAPI_BIN"))))
      local out = p:read("a")
      local ok = p:close()
      os.execute(("rm -rf '%s'"):format(dir))
      assert.is_falsy(ok)
      assert.is_truthy(out:find("can be constant", 1, true), out)
      assert.is_truthy(out:find("zz_bad_constant.lua:3", 1, true), out)
    end)
  end)
end)
