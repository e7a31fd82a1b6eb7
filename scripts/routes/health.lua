-- Health endpoints for people and orchestrators (API.md §9). No token, not
-- rate limited. /health/live answers as long as the process serves;
-- /health and /health/ready check the database (and scripts are loaded, or
-- this file would not answer).
local route = require "lib.route"
local db = require "lib.db"
local runtime = require "tk.runtime"
local realtime = require "tk.realtime"
local tkdb = require "tk.db"
local json = require "lib.json"

local r = route.group("")

local function database_ok()
  tkdb.use_primary() -- the primary is what "database" means here, not the read replica
  local ok, rows = pcall(db.try, "SELECT 1 AS ok")
  return ok and rows ~= nil
end

-- "disabled" without REDIS_URL (in-process stand-ins), else whether the
-- realtime bridge's connections to Redis are up: "ok" | "unavailable".
local function redis_state()
  return realtime.redis_state()
end

r:get("/health", { auth = "none", summary = "Overall health with per-dependency checks" }, function()
  local db_ok = database_ok()
  local body = {
    status = db_ok and "ok" or "degraded",
    checks = { database = db_ok and "ok" or "unavailable", redis = redis_state() },
    version = runtime.version,
    uptimeSeconds = runtime.uptime(),
  }
  -- The read replica (DATABASE_READ_URL): "disabled" without one; its lag
  -- as last measured (null while unknown). Not a reason for a 503: reads
  -- fall back to the primary.
  local replica = tkdb.replica()
  body.checks.replica = replica and replica.state or "disabled"
  if replica then
    body.replicaLagSeconds = replica.lag_seconds or json.null
  end
  return db_ok and 200 or 503, body
end)

-- constant: answered by the C runtime from a body cached per generation.
r:get("/health/live", { auth = "none", constant = true, summary = "The process is up" }, function()
  return 200, { status = "ok" }
end)

r:get("/health/ready", { auth = "none",
  summary = "Dependencies are up, scripts are loaded and the process is not shutting down" }, function()
  if runtime.shutting_down() then -- draining after SIGTERM: send new work elsewhere
    return 503, { status = "shutting_down", checks = { database = database_ok() and "ok" or "unavailable" } }
  end
  if not database_ok() then
    return 503, { status = "unavailable", checks = { database = "unavailable" } }
  end
  return 200, { status = "ready", checks = { database = "ok" } }
end)

return r
