-- Route declarations. A routes file builds a group and returns it:
--
--   local route = require "lib.route"
--   local r = route.group("/api/v1")
--   r:post("/auth/login", { auth = "none", body = schemas.login }, function(req) ... end)
--   return r
--
-- Options: auth = "required" (default) | "optional" | "none"; body and query
-- are schemas (lib.schema) checked before the handler runs; summary, tags
-- and status document the route; rate = { limit = n [, window = s]
-- [, per = "user"|"ip"] } gives the route a rate-limit bucket of its own on
-- top of the policy's (policies/ratelimits.lua); constant = true marks a GET
-- route without auth, path parameters or schemas whose handler always gives
-- the same answer (GET /health/live): lib.dispatch runs it once per script
-- generation and the C runtime answers it from that cached body on the HTTP
-- thread, without a Lua worker, unless the route has rate-limit buckets or
-- a plugin has before/after hooks (then it takes the normal path, and the
-- handler runs per request). The C runtime compiles method + path into
-- its route table; `where` (file:line of the declaration) is kept for
-- errors and `taskapi routes`.
local runtime = require "tk.runtime"

local setmetatable, error, type = setmetatable, error, type

local M = {}

local Group = {}
Group.__index = Group

local AUTH = { required = true, optional = true, none = true }
local OPTIONS = {
  auth = true, body = true, query = true, summary = true, description = true, tags = true,
  status = true, responses = true, errors = true, rate = true, constant = true,
}

function M.group(prefix)
  return setmetatable({ prefix = prefix or "", routes = {} }, Group)
end

local function add(self, method, path, opts, handler)
  if type(handler) ~= "function" then
    error(("route %s %s: handler must be a function"):format(method, path), 3)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error(("route %s %s: unknown option '%s'"):format(method, path, k), 3)
    end
  end
  local auth = opts.auth or "required"
  if not AUTH[auth] then
    error(("route %s %s: auth must be required, optional or none"):format(method, path), 3)
  end
  if opts.rate ~= nil and type(opts.rate) ~= "table" then
    error(("route %s %s: rate must be a table { limit = n [, window = s] [, per = ...] }")
      :format(method, path), 3)
  end
  if opts.constant ~= nil then
    if opts.constant ~= true and opts.constant ~= false then
      error(("route %s %s: constant must be true or false"):format(method, path), 3)
    end
    if opts.constant and (method ~= "GET" or auth ~= "none" or opts.body ~= nil
        or opts.query ~= nil or (self.prefix .. path):find(":", 1, true)) then
      error(("route %s %s: only a GET route with auth = \"none\", no path parameters and no "
        .. "body or query schema can be constant"):format(method, path), 3)
    end
  end
  local r = {
    method = method,
    path = self.prefix .. path,
    auth = auth,
    body = opts.body,
    query = opts.query,
    summary = opts.summary,
    description = opts.description,
    tags = opts.tags,
    status = opts.status,
    responses = opts.responses,
    errors = opts.errors,
    rate_option = opts.rate,
    constant = opts.constant or nil,
    handler = handler,
    where = runtime.where(3),
  }
  self.routes[#self.routes + 1] = r
  return r
end

for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
  local method = m:upper()
  Group[m] = function(self, path, opts, handler)
    local r = add(self, method, path, opts, handler) -- not a tail call: keeps the caller's line
    return r
  end
end

return M
