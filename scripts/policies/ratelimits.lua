-- Rate limits (API.md §9, §10): which routes are limited and how much. The
-- C runtime counts and answers 429 before any Lua runs; this policy only
-- sets the numbers, per route, when the scripts load (an operator changes
-- them here and reloads). Windows are one minute.
--   general  per user (per client IP before login): RATE_LIMIT_PER_MIN
--   auth     per client IP, one budget shared by login, register,
--            forgot-password and reset-password: AUTH_RATE_LIMIT_PER_MIN
-- Failed logins per email are counted by the login route itself
-- (M.login_failures_per_email) through tk.ratelimit.
local runtime = require "tk.runtime"

local M = {}

local cfg = runtime.config()

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

--- The limits of a route: { general = n, auth = n } (absent = unlimited).
function M.for_route(route)
  if exempt(route.path) then
    return {}
  end
  local limits = { general = cfg.rate_limit_per_min }
  if AUTH_BUDGET[route.method .. " " .. route.path] then
    limits.auth = cfg.auth_rate_limit_per_min
  end
  return limits
end

M.login_failures_per_email = cfg.auth_rate_limit_per_min
M.WINDOW = 60

return M
