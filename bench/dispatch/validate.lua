-- Validation cost per request, table walk (schema.validate, what every
-- request did before) against the compiled validator (schema.compile, what
-- lib.dispatch now runs), over the real route schemas of scripts/routes.
-- Run from the checkout: lua5.4 bench/dispatch/validate.lua [ITERATIONS]
-- With BASE_SCRIPTS=<dir> (another checkout's scripts/, as bench/dispatch.sh
-- sets it) the walk column is that checkout's schema.validate: "before".
-- Prints one line per case: name, µs per call for each, and the ratio.
-- The tk.* modules exist only inside the server: inert stand-ins here (the
-- route files only need them at request time).
package.path = "scripts/?.lua;scripts/?/init.lua;" .. package.path
local function inert(name)
  return setmetatable({ version = "bench", array_mt = { __name = "json.array" } }, {
    __index = function(_, k)
      return function() return nil end, k, name
    end,
  })
end
for _, m in ipairs({ "tk.db", "tk.auth", "tk.log", "tk.runtime", "tk.realtime", "tk.ratelimit",
    "tk.mail", "tk.jobs", "tk.events", "tk.uuid", "tk.json" }) do
  package.preload[m] = function() return inert(m) end
end
package.preload["tk.runtime"] = function()
  local m = inert("tk.runtime")
  m.config = function() return {} end
  m.where = function() return "bench" end
  return m
end

local schema = require "lib.schema"
local walker = schema
if os.getenv("BASE_SCRIPTS") then
  walker = assert(loadfile(os.getenv("BASE_SCRIPTS") .. "/lib/schema.lua"))()
end
local cjson = require "cjson"
local N = tonumber(arg[1]) or 200000

local routes = {}
for _, f in ipairs({ "tasks", "projects", "comments", "auth" }) do
  for _, r in ipairs(require("routes." .. f).routes) do routes[r.method .. " " .. r.path] = r end
end

local function time(fn, value)
  local t0 = os.clock()
  for _ = 1, N do fn(value) end
  return (os.clock() - t0) / N * 1e6
end

local cases = {
  { "POST /api/v1/tasks body (7 fields)", "body", "POST /api/v1/tasks", cjson.decode([[
    {"projectId":"123e4567-e89b-12d3-a456-426614174000","title":"  Fix the login page  ",
     "description":"It breaks on Safari","status":"todo","priority":"high",
     "tags":["bug","frontend"],"dueDate":"2026-12-31"}]]), {} },
  { "GET /api/v1/tasks query (projectId, limit)", "query", "GET /api/v1/tasks",
    { projectId = "123e4567-e89b-12d3-a456-426614174000", limit = "20" }, { coerce = true } },
  { "PATCH /api/v1/tasks/:id body (2 fields)", "body", "PATCH /api/v1/tasks/:id",
    cjson.decode([[{"status":"done","priority":"low"}]]), {} },
  { "GET /api/v1/tasks/:id body (empty, no schema)", "body", "GET /api/v1/tasks/:id", {}, {} },
}

print(("%-46s %12s %12s %8s"):format("case", "walk µs", "compiled µs", "ratio"))
for _, c in ipairs(cases) do
  local name, key, rkey, value, opts = c[1], c[2], c[3], c[4], c[5]
  local r = assert(routes[rkey], rkey)
  local s = r[key] or { type = "object", properties = {} }
  local v = schema.compile(s, opts)
  local ok1 = walker.validate(s, value, opts)
  local ok2 = v(value)
  assert(ok1 and ok2, name .. ": the sample must be valid")
  -- warm up, then alternate twice to even out noise
  time(function(x) return walker.validate(s, x, opts) end, value)
  local walk = math.min(time(function(x) return walker.validate(s, x, opts) end, value),
    time(function(x) return walker.validate(s, x, opts) end, value))
  local comp = math.min(time(v, value), time(v, value))
  print(("%-46s %12.2f %12.2f %7.1fx"):format(name, walk, comp, walk / comp))
end
