-- Rate limits (API.md §9, §10): which routes are limited and how much. The
-- C runtime counts and answers 429 before any Lua runs; this policy only
-- sets the numbers, per route, when the scripts load (an operator changes
-- them here and reloads).
--
-- A route's limits are a list of buckets { bucket, limit, window, per }:
--   bucket  the counter's name; every route naming the same bucket counts
--           against one budget, so they must agree on limit, window and per
--           (the loader refuses a mismatch, naming both routes)
--   limit   hits per window; window in seconds (M.WINDOW by default)
--   per     "user" (the caller; the client IP before login) or "ip"
-- The defaults:
--   general  per user: RATE_LIMIT_PER_MIN, one budget for every route
--   auth     per client IP, one budget shared by login, register,
--            forgot-password and reset-password: AUTH_RATE_LIMIT_PER_MIN
-- A route that declares its own `rate = { limit = 3 [, window, per] }`
-- also gets a bucket of its own, named after it ("route:GET /path").
-- Failed logins per email are counted by the login route itself
-- (M.login_failures_per_email in M.WINDOW) through tk.ratelimit.
local runtime = require "tk.runtime"

local M = {}

local cfg = runtime.config()

M.WINDOW = 60 -- seconds, for every bucket below and for failed logins
M.login_failures_per_email = cfg.auth_rate_limit_per_min

local AUTH_BUDGET = {
  ["POST /api/v1/auth/login"] = true,
  ["POST /api/v1/auth/register"] = true,
  ["POST /api/v1/auth/forgot-password"] = true,
  ["POST /api/v1/auth/reset-password"] = true,
}

local function exempt(path)
  return path == "/health" or path:find("^/health/") ~= nil or path == "/metrics"
    or path == "/api/v1/openapi.json"
end

--- The buckets of a route (an empty list: unlimited).
function M.for_route(route)
  if exempt(route.path) then
    return {}
  end
  local buckets = {}
  if (cfg.rate_limit_per_min or 0) > 0 then -- 0 only in a VM made without configuration
    buckets[1] = { bucket = "general", limit = cfg.rate_limit_per_min, window = M.WINDOW, per = "user" }
  end
  if AUTH_BUDGET[route.method .. " " .. route.path] and (cfg.auth_rate_limit_per_min or 0) > 0 then
    buckets[#buckets + 1] = { bucket = "auth", limit = cfg.auth_rate_limit_per_min,
      window = M.WINDOW, per = "ip" }
  end
  local own = route.rate_option
  if own then
    buckets[#buckets + 1] = { bucket = "route:" .. route.method .. " " .. route.path,
      limit = own.limit, window = own.window or M.WINDOW, per = own.per or "user" }
  end
  return buckets
end

return M
