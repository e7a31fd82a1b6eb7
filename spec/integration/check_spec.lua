-- `taskapi check` (README, docs/lua-api.md): it compiles every file of
-- SCRIPTS_DIR and PLUGINS_DIR, enabled in this shell or not, reports every
-- schema problem at once, and names both declarations of conflicting routes.
-- Runs the binary on temporary copies of the scripts; no server needed.
local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("taskapi check", function()
  local dir, scripts, plugins

  local function check()
    return sh(("cd %s && env -u PLUGINS -u PLUGINS_CONFIG SCRIPTS_DIR=%s PLUGINS_DIR=%s %s check")
      :format(quote(dir), quote(scripts), quote(plugins), quote(os.getenv("TASKAPI_BIN"))))
  end

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    scripts, plugins = dir .. "/scripts", dir .. "/plugins"
    assert(os.execute(("cp -r %s %s && cp -r plugins %s"):format(
      quote(os.getenv("TASKAPI_SCRIPTS_DIR") or "scripts"), quote(scripts), quote(plugins))))
  end)

  after_each(function()
    os.execute("rm -rf " .. quote(dir))
  end)

  it("says ok for the shipped scripts and plugins", function()
    local out = check()
    assert.truthy(out:find("ok: " .. scripts .. ": %d+ routes, %d+ files compiled"), out)
    assert.truthy(out:find("exit=0", 1, true), out)
  end)

  it("finds a syntax error in a plugin this shell does not enable", function()
    write(plugins .. "/webhooks/init.lua", "local M = {\nreturn M oops\n")
    local out = check()
    assert.truthy(out:find(plugins .. "/webhooks/init.lua:2:", 1, true), out)
    assert.truthy(out:find("exit=1", 1, true), out)
  end)

  it("names both declarations of two conflicting routes", function()
    write(scripts .. "/routes/zz_a.lua", [[
local r = require("lib.route").group("/api/v1")
r:get("/twice/:id", { auth = "none" }, function() return 200, {} end)
return r
]])
    write(scripts .. "/routes/zz_b.lua", [[
local r = require("lib.route").group("/api/v1")

r:get("/twice/:other", { auth = "none" }, function() return 200, {} end)
return r
]])
    local out = check()
    assert.truthy(out:find("zz_b.lua:3: route GET /api/v1/twice/:other conflicts with GET "
      .. "/api/v1/twice/:id (defined at " .. scripts .. "/routes/zz_a.lua:2)", 1, true), out)
    assert.truthy(out:find("exit=1", 1, true), out)
  end)

  it("reports every bad schema at once, in route order", function()
    write(scripts .. "/routes/zz_schemas.lua", [[
local r = require("lib.route").group("/api/v1/zz")
r:post("/one", { auth = "none", body = { type = "object", properties = {
  b = { type = "strng" }, a = { type = "string", maxLenght = 3 } } } }, function() return 200, {} end)
r:get("/two", { auth = "none", query = { type = "object", properties = {
  limit = { type = "integer", minimum = 5, maximum = 1 } } } }, function() return 200, {} end)
return r
]])
    local out = check()
    local a = out:find("zz_schemas.lua:2: body schema of POST /api/v1/zz/one: "
      .. "schema.properties.a: unknown keyword 'maxLenght'", 1, true)
    local b = out:find("zz_schemas.lua:2: body schema of POST /api/v1/zz/one: "
      .. "schema.properties.b: unknown type 'strng'", 1, true)
    local c = out:find("zz_schemas.lua:4: query schema of GET /api/v1/zz/two: "
      .. "schema.properties.limit: minimum is greater than maximum", 1, true)
    assert.truthy(a and b and c, out)
    assert.is_true(a < b and b < c, out)
    assert.truthy(out:find("exit=1", 1, true), out)
  end)
end)
