-- /api/v1/admin (docs/API.md §9): what an operator asks about a running
-- instance, for global admins only. `taskapi status` prints it.
local route = require "lib.route"
local db = require "lib.db"
local json = require "lib.json"
local errors = require "lib.errors"
local plugins = require "lib.plugins"
local ratelimits = require "policies.ratelimits"
local runtime = require "tk.runtime"
local metrics = require "tk.metrics"
local realtime = require "tk.realtime"

local os_date, pairs, sort = os.date, pairs, table.sort

local r = route.group("/api/v1/admin")

local JOBS = [[
  SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
         count(*) FILTER (WHERE status = 'pending' AND run_at <= now()) AS due,
         coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'pending'
           AND run_at <= now())), 0)::float8 AS oldest_due_seconds
    FROM jobs WHERE status = 'pending']]

-- failed jobs of the last day: the table keeps every finished job
local FAILED_JOBS = [[
  SELECT count(*) AS failed FROM jobs
   WHERE status = 'failed' AND finished_at > now() - interval '1 day']]

local function iso(ms)
  return os_date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. (".%03dZ"):format(ms % 1000)
end

r:get("/status", {
  summary = "The running instance: script generation, plugins, hook failures, rate limits, sockets, jobs",
  description = "Global admins only (403 otherwise). Hook failures are the instance's since it "
    .. "started (every worker, every generation), as taskapi_plugin_hook_failures_total on /metrics.",
}, function(req)
  if req.user.role ~= "admin" then
    errors.forbidden("global admins only")
  end
  local st = runtime.status()
  local loaded = plugins.list()
  local list = {}
  for i, p in ipairs(loaded) do
    list[i] = { name = p.name, version = p.version, priority = p.priority }
  end
  -- The same counts as taskapi_plugin_hook_failures_total: per plugin, and
  -- per plugin and hook.
  local f = metrics.hook_failures()
  local by, by_hook = {}, {}
  local names = {}
  for name in pairs(f.by_plugin) do
    names[#names + 1] = name
  end
  sort(names)
  for _, name in ipairs(names) do
    local n = 0
    for _, count in pairs(f.by_plugin[name]) do
      n = n + count
    end
    by[name], by_hook[name] = n, f.by_plugin[name]
  end
  local cfg = runtime.config()
  local jobs = db.one(JOBS)
  local failed = db.one(FAILED_JOBS)
  local rt = realtime.stats()
  return 200, { data = {
    version = runtime.version,
    pid = st.pid,
    uptimeSeconds = runtime.uptime(),
    shuttingDown = runtime.shutting_down(),
    scripts = {
      generation = st.generation,
      loadedAt = st.loaded_at_ms > 0 and iso(st.loaded_at_ms) or json.null,
      digest = st.digest,
      files = st.files,
      routes = st.routes,
      reloadFailures = st.reload_failures,
      lastReloadError = st.last_error and { message = st.last_error, at = iso(st.last_error_at_ms) }
        or json.null,
    },
    plugins = json.array(list),
    hookFailures = { total = f.total, byPlugin = by, byHook = by_hook },
    rateLimits = {
      windowSeconds = ratelimits.WINDOW,
      perUserPerWindow = cfg.rate_limit_per_min,
      authPerIpPerWindow = cfg.auth_rate_limit_per_min,
      loginFailuresPerEmail = ratelimits.login_failures_per_email,
    },
    realtime = { connections = rt.connections, published = rt.published, delivered = rt.delivered,
      dropped = rt.dropped },
    jobs = { pending = jobs.pending, due = jobs.due, oldestDueSeconds = jobs.oldest_due_seconds,
      failedLastDay = failed.failed },
  } }
end)

return r
