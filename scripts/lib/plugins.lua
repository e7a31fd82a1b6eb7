-- The plugin loader and manager. A plugin is a folder plugins/<name>/
-- (PLUGINS_DIR) whose init.lua returns its manifest, pure data plus
-- functions, in the manner of a Kong plugin:
--
--   return {
--     name = "audit",            -- must match the folder
--     version = "1.0.0",
--     priority = 500,            -- higher runs first, in every phase
--     schema = {...},            -- lib.schema object schema of its settings
--     init = function(conf) end, -- optional, once per VM at load (no database)
--     routes = function(conf) return group end, -- optional: a lib.route group
--                                -- (or a list of groups), or the group itself
--     hooks = {
--       ["task.created"] = function(event, conf) end,  -- domain events (EVENTS)
--       ["*"] = function(event, conf) end,              -- every domain event
--       before = function(req, route, conf) end,        -- before the handler
--       after = function(req, status, body, conf) end,  -- after it answered
--       amend = {                                       -- change the entity (AMENDABLE)
--         ["task.created"] = function(event, conf) return {assigneeId = ...} end,
--       },
--     },
--   }
--
-- Enabled plugins are PLUGINS (a comma list) or, when it is unset, the keys
-- of the PLUGINS_CONFIG file ({"<name>": {settings}, ...}); their settings
-- are validated against the schema at load. The file is read afresh by
-- every generation (runtime.plugin_settings), so a reload applies changed
-- settings and, without PLUGINS, enables and disables plugins. Anything
-- wrong (a missing plugin, a syntax error, a bad manifest, bad settings, an
-- unreadable settings file) raises, so the generation fails as a whole:
-- `taskapi check` and a reload report it and no worker ever runs with half
-- the plugins.
--
-- Amend hooks run inside the change's transaction after the entity is
-- written and before its event is published (M.amend): the change a hook
-- returns is validated like a client's and written as a new version, so the
-- answer, the event and the observing hooks all carry the final state. One
-- that fails (raises, spends its budget, returns a refused change) is
-- rolled back to its savepoint alone, logged and counted, and the request
-- goes on without that change; one that raises an HTTP error (lib.errors)
-- refuses the whole write, which is rolled back and answered with it.
--
-- Domain hooks run inside the transaction of the change (events.publish
-- calls M.domain_event), each in its own SAVEPOINT: what a hook writes
-- commits with the change, and a failing hook is rolled back alone, logged
-- and counted, never failing the user's request. `before` hooks may answer
-- for the route by raising an HTTP error (lib.errors); any other error in a
-- phase hook is logged and counted and the request goes on. Every hook runs
-- with a share of the request's instruction budget (runtime.fenced): one
-- that spends it fails like any other failing hook (a domain hook's writes
-- rolled back to its savepoint), and the request, which may already have
-- written, keeps enough budget to answer what it stored. Event data is
-- shared by every hook of an event: treat it as read-only.
local tkdb = require "tk.db"
local log = require "tk.log"
local metrics = require "tk.metrics"
local runtime = require "tk.runtime"
local errors = require "lib.errors"
local json = require "lib.json"
local schema = require "lib.schema"

local type, pairs, ipairs, tostring, error, xpcall = type, pairs, ipairs, tostring, error, xpcall
local next, tonumber, getmetatable = next, tonumber, getmetatable
local math_type, sort, concat, os_date = math.type, table.sort, table.concat, os.date

local M = {}

--- Domain events a plugin may hook, by the realtime event they come from.
M.EVENTS = {
  "task.created", "task.updated", "task.deleted",
  "comment.created", "comment.updated", "comment.deleted",
  "project.updated", "project.deleted",
  "member.added", "member.updated", "member.removed",
}

local DOMAIN = {} -- "task:created" -> "task.created"
local IS_EVENT = {}
for _, name in ipairs(M.EVENTS) do
  DOMAIN[(name:gsub("%.", ":"))] = name
  IS_EVENT[name] = true
end

--- Domain events whose entity an amend hook may change (the routes that
--- write them call M.amend).
M.AMENDABLE = { "task.created", "task.updated" }
local IS_AMENDABLE = {}
for _, name in ipairs(M.AMENDABLE) do
  IS_AMENDABLE[name] = true
end

local PHASES = { before = true, after = true }
local MANIFEST_KEYS = { name = true, version = true, priority = true, schema = true, init = true,
  routes = true, hooks = true, description = true }
local EMPTY_SCHEMA = { type = "object", properties = {} }

local SAVEPOINT = "SAVEPOINT tk_plugin_hook"
local RELEASE = "RELEASE SAVEPOINT tk_plugin_hook"
local ROLLBACK_TO = "ROLLBACK TO SAVEPOINT tk_plugin_hook"

-- State of this VM (one per worker); rebuilt by every load, i.e. per
-- generation.
local loaded = {}      -- plugins in run order: {name, version, priority, conf, hooks}
local by_event = {}    -- domain event name -> list of {plugin, fn}
local amenders = {}    -- amendable event name -> list of {plugin, fn}
local phase = { before = {}, after = {} }
local failures = { total = 0, by_plugin = {} }
local current_req      -- the request being served (for event.actor)
local in_hook = false  -- a hook's own events.publish does not re-enter the hooks

-- ---- failures ---------------------------------------------------------------

local function traceback(e)
  if errors.is(e) then
    return e
  end
  return runtime.traceback(tostring(e), 2)
end

-- An HTTP error (a refused change) as one line for the log.
local function describe(err)
  if not errors.is(err) then
    return tostring(err)
  end
  local parts = {}
  for i, d in ipairs(err.details or {}) do
    parts[i] = (d.field and d.field .. " " or "") .. tostring(d.message)
  end
  return tostring(err) .. (#parts > 0 and " (" .. concat(parts, "; ") .. ")" or "")
end

local function failed(p, what, err)
  failures.total = failures.total + 1
  failures.by_plugin[p.name] = (failures.by_plugin[p.name] or 0) + 1
  metrics.hook_failure(p.name, what) -- taskapi_plugin_hook_failures_total, process-wide
  log.error("plugin %s: %s hook failed (failure %d of this plugin in this worker): %s",
    p.name, what, failures.by_plugin[p.name], describe(err))
end

--- Hook failures counted in this worker since its generation loaded:
--- {total = n, by_plugin = {name = n}} (a copy). The process-wide count,
--- by plugin and hook, is tk.metrics.hook_failures() (and /metrics).
function M.failures()
  local by = {}
  for k, v in pairs(failures.by_plugin) do
    by[k] = v
  end
  return { total = failures.total, by_plugin = by }
end

-- ---- loading ------------------------------------------------------------------

-- The names of a comma list; `source` names it in errors.
local function split_list(s, source)
  local out, seen = {}, {}
  if not s:find("%S") then
    return out
  end
  for item in (s .. ","):gmatch("([^,]*),") do
    local name = item:match("^%s*(.-)%s*$")
    if not name:match("^[a-z0-9_-]+$") then
      error(("%s: '%s' is not a plugin name ([a-z0-9_-])"):format(source, name), 0)
    end
    if seen[name] then
      error(("%s: '%s' is listed twice"):format(source, name), 0)
    end
    seen[name] = true
    out[#out + 1] = name
  end
  return out
end

-- 1-based line of byte offset `pos` in text.
local function line_of(text, pos)
  local _, n = text:sub(1, pos):gsub("\n", "")
  return n + 1
end

-- "<path>:<line>" of the settings of plugin `name` in the config text (the
-- line of `field` inside them when found, else of the plugin's key), or
-- just the path.
local function config_where(settings, name, field)
  local path = settings.config_path or "PLUGINS_CONFIG"
  local text = settings.config
  local pos = text and text:find('"' .. name:gsub("%p", "%%%0") .. '"%s*:')
  if not pos then
    return path
  end
  local key = field and field:match("^[%w_]+")
  local fpos = key and text:find('"' .. key .. '"%s*:', pos + #name + 2)
  return ("%s:%d"):format(path, line_of(text, fpos or pos))
end

local function parse_config(settings)
  if settings.config_error ~= nil then
    error(settings.config_error, 0)
  end
  if settings.config == nil then
    return {}
  end
  local where = settings.config_path or "PLUGINS_CONFIG"
  local conf, err = json.decode(settings.config)
  if conf == nil then
    local char = tonumber(tostring(err):match("at character (%d+)"))
    if char then
      where = ("%s:%d"):format(where, line_of(settings.config, char))
    end
    error(("%s: PLUGINS_CONFIG is not valid JSON: %s"):format(where, tostring(err)), 0)
  end
  if type(conf) ~= "table" or getmetatable(conf) == json.array_mt or conf[1] ~= nil then
    error(("%s: PLUGINS_CONFIG must be a JSON object: {\"<plugin>\": {settings}, ...}"):format(where),
      0)
  end
  return conf
end

local function enabled_names(settings, conf)
  if settings.list ~= nil then
    return split_list(settings.list, "PLUGINS")
  end
  local names = {}
  for name, v in pairs(conf) do
    if v ~= false then
      names[#names + 1] = name
    end
  end
  sort(names)
  return split_list(concat(names, ","), settings.config_path or "PLUGINS_CONFIG")
end

local function check_manifest(m, name, file)
  local function bad(msg, ...)
    error(("%s: plugin manifest: " .. msg):format(file, ...), 0)
  end
  if type(m) ~= "table" then
    bad("init.lua must return the manifest table (got %s)", type(m))
  end
  for k in pairs(m) do
    if not MANIFEST_KEYS[k] then
      bad("unknown field '%s'", tostring(k))
    end
  end
  if m.name ~= name then
    bad("name must be \"%s\", the folder's name (got %s)", name, tostring(m.name))
  end
  if type(m.version) ~= "string" or not m.version:match("^%d+%.%d+%.%d+[%w.+-]*$") then
    bad("version must be a version string such as \"1.0.0\"")
  end
  if math_type(m.priority) ~= "integer" then
    bad("priority must be an integer")
  end
  if m.schema ~= nil then
    if type(m.schema) ~= "table" or m.schema.type ~= "object" then
      bad("schema must be an object schema (lib.schema)")
    end
    local ok, err = schema.check(m.schema)
    if not ok then
      bad("%s", err)
    end
  end
  if m.init ~= nil and type(m.init) ~= "function" then
    bad("init must be a function")
  end
  if m.routes ~= nil and type(m.routes) ~= "function" and type(m.routes) ~= "table" then
    bad("routes must be a route group or a function returning one")
  end
  if m.hooks ~= nil and type(m.hooks) ~= "table" then
    bad("hooks must be a table")
  end
  for k, fn in pairs(m.hooks or {}) do
    if not (IS_EVENT[k] or PHASES[k] or k == "*" or k == "amend") then
      bad("hooks.%s: not a domain event (%s), \"*\", \"before\", \"after\" or \"amend\"",
        tostring(k), concat(M.EVENTS, ", "))
    end
    if k == "amend" then
      if type(fn) ~= "table" then
        bad("hooks.amend must be a table {[event] = function}")
      end
      for ev, afn in pairs(fn) do
        if not IS_AMENDABLE[ev] then
          bad("hooks.amend.%s: not an event whose entity a hook may change (%s)", tostring(ev),
            concat(M.AMENDABLE, ", "))
        end
        if type(afn) ~= "function" then
          bad("hooks.amend.%s must be a function", ev)
        end
      end
    elseif type(fn) ~= "function" then
      bad("hooks.%s must be a function", k)
    end
  end
end

-- The routes a plugin adds, each tagged with the plugin's name.
local function plugin_routes(m, conf, file, out)
  local r = m.routes
  if type(r) == "function" then
    r = r(conf)
  end
  if r == nil then
    return
  end
  local groups = (type(r) == "table" and r.routes) and { r } or r
  if type(groups) ~= "table" then
    error(("%s: plugin manifest: routes did not give a route group"):format(file), 0)
  end
  for _, g in ipairs(groups) do
    if type(g) ~= "table" or type(g.routes) ~= "table" then
      error(("%s: plugin manifest: routes did not give a route group"):format(file), 0)
    end
    for _, route in ipairs(g.routes) do
      route.plugin = m.name
      out[#out + 1] = route
    end
  end
end

--- Loads the enabled plugins (once per VM, from app.lua) and returns the
--- list of routes they add. Raises "file[:line]: reason" on any problem.
function M.load()
  loaded, by_event, amenders, phase = {}, {}, {}, { before = {}, after = {} }
  failures = { total = 0, by_plugin = {} }
  local settings = runtime.plugin_settings()
  local conf_all = parse_config(settings)
  local names = enabled_names(settings, conf_all)
  local available = {}
  for _, dir in ipairs(runtime.list_dirs("plugins")) do
    available[dir] = true
  end
  local dir = settings.dir or "plugins"
  local routes = {}
  for _, name in ipairs(names) do
    local file = ("%s/%s/init.lua"):format(dir, name)
    if not available[name] then
      error(("PLUGINS: plugin '%s' is enabled but %s does not exist"):format(name, file), 0)
    end
    local m = require("plugins." .. name)
    check_manifest(m, name, file)
    local raw = conf_all[name]
    if raw == nil or raw == true then
      raw = {}
    end
    if type(raw) ~= "table" or (next(raw) ~= nil and raw[1] ~= nil) then
      error(("%s: settings of plugin '%s' must be a JSON object"):format(
        config_where(settings, name), name), 0)
    end
    local conf, details = schema.validate(m.schema or EMPTY_SCHEMA, raw)
    if not conf then
      local parts = {}
      for i, d in ipairs(details) do
        parts[i] = (d.field ~= "" and d.field .. " " or "") .. d.message
      end
      error(("%s: invalid settings for plugin '%s' (schema in %s): %s"):format(
        config_where(settings, name, details[1].field), name, file, concat(parts, "; ")), 0)
    end
    if m.init then
      m.init(conf)
    end
    plugin_routes(m, conf, file, routes)
    loaded[#loaded + 1] = { name = name, version = m.version, priority = m.priority, conf = conf,
      hooks = m.hooks or {} }
  end
  sort(loaded, function(a, b)
    if a.priority ~= b.priority then
      return a.priority > b.priority
    end
    return a.name < b.name
  end)
  -- Run order: plugins by priority; within one, its named hook before "*".
  for _, p in ipairs(loaded) do
    for _, k in ipairs({ "before", "after" }) do
      if p.hooks[k] then
        phase[k][#phase[k] + 1] = { plugin = p, fn = p.hooks[k] }
      end
    end
    for _, ev in ipairs(M.AMENDABLE) do
      local fn = p.hooks.amend and p.hooks.amend[ev]
      if fn then
        local list = amenders[ev] or {}
        amenders[ev] = list
        list[#list + 1] = { plugin = p, fn = fn }
      end
    end
    for _, ev in ipairs(M.EVENTS) do
      for _, fn in ipairs({ p.hooks[ev] or false, p.hooks["*"] or false }) do
        if fn then
          local list = by_event[ev] or {}
          by_event[ev] = list
          list[#list + 1] = { plugin = p, fn = fn }
        end
      end
    end
  end
  return routes
end

--- The loaded plugins in run order: {{name, version, priority}, ...}.
function M.list()
  local out = {}
  for i, p in ipairs(loaded) do
    out[i] = { name = p.name, version = p.version, priority = p.priority }
  end
  return out
end

-- ---- request phases ---------------------------------------------------------------

-- Calls a hook: ok, or false and its error (with a traceback). Each hook
-- runs fenced (runtime.fenced): a hook that spends its share of the
-- instruction budget fails alone, like any other failing hook, and the
-- request keeps the rest, so it can still answer what it stored.
local function call_hook(fn, ...)
  local fenced_ok, ok, err = runtime.fenced(xpcall, fn, traceback, ...)
  if not fenced_ok then
    return false, ok -- the budget error
  end
  return ok, err
end

--- True when a loaded plugin has a `before` or `after` hook: then every
--- request must reach Lua (constant routes included, lib.dispatch).
function M.has_request_hooks()
  return #phase.before > 0 or #phase.after > 0
end

--- Remembers the request being served (the actor of the events it causes).
function M.begin(req)
  current_req = req
  in_hook = false -- in case a hook of the last request died past its error handler
end

--- Runs the `before` hooks in priority order. An HTTP error raised by one
--- answers the request (propagates); any other error is isolated.
function M.before(req, route)
  for _, h in ipairs(phase.before) do
    local ok, err = call_hook(h.fn, req, route, h.plugin.conf)
    if not ok then
      if errors.is(err) then
        error(err, 0)
      end
      failed(h.plugin, "before", err)
    end
  end
end

--- Runs the `after` hooks in priority order with the answer's status and
--- body table (nil for none). Errors are isolated; nothing is returned.
function M.after(req, status, body)
  for _, h in ipairs(phase.after) do
    local ok, err = call_hook(h.fn, req, status, body, h.plugin.conf)
    if not ok then
      failed(h.plugin, "after", err)
    end
  end
end

-- ---- domain events --------------------------------------------------------------------

local function iso_now()
  local ms = runtime.now_ms()
  return os_date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. (".%03dZ"):format(ms % 1000)
end

-- Runs fn(...) (a hook call: ok, result | false, err) in a savepoint of
-- the open transaction (if any): ok, result when it succeeded; false, err
-- when it failed, its writes and the after-commit work it queued (events it
-- published) rolled back.
local function in_savepoint(fn, ...)
  local tx = tkdb.in_tx()
  local mark = tkdb.after_commit_mark()
  if tx and not tkdb.query(SAVEPOINT) then
    return false, "cannot open a savepoint; hook skipped"
  end
  local ok, res = fn(...)
  if tx then
    -- A hook that swallowed a failed statement leaves the transaction
    -- aborted: RELEASE fails then, and the savepoint is rolled back too.
    if ok and not tkdb.query(RELEASE) then
      ok, res = false, "the hook left the transaction aborted (a failed statement)"
    end
    if not ok then
      tkdb.query(ROLLBACK_TO)
      tkdb.query(RELEASE)
      tkdb.after_commit_drop(mark)
    end
  end
  return ok, res
end

-- Runs one hook in a savepoint of the open transaction (if any).
local function run_hook(h, ev)
  local ok, err = in_savepoint(call_hook, h.fn, ev, h.plugin.conf)
  if not ok then
    failed(h.plugin, ev.name, err)
  end
end

--- Called by events.publish inside the change's transaction with the
--- realtime event (room, "task:created", data): runs the plugins' hooks of
--- the matching domain event ("task.created") in priority order. The hook
--- gets event = {name, project_id, data, actor (req.user or nil), actor_id,
--- request_id, occurred_at} and its plugin's settings.
local function event_of(name, room, data)
  local user = current_req and current_req.user
  return {
    name = name,
    project_id = type(room) == "string" and room:match("^project:(.+)$") or nil,
    data = data,
    actor = user,
    actor_id = user and user.id,
    request_id = runtime.request_id(),
    occurred_at = iso_now(),
  }
end

function M.domain_event(room, realtime_name, data)
  local name = DOMAIN[realtime_name]
  local list = name and by_event[name]
  if list == nil or in_hook then
    return
  end
  local ev = event_of(name, room, data)
  in_hook = true
  for _, h in ipairs(list) do
    run_hook(h, ev)
  end
  in_hook = false
end

-- ---- amend hooks --------------------------------------------------------------------

-- Calls an amend hook and applies what it returns: ok, new data (nil: no
-- change) | false, err. An HTTP error the hook raised itself is re-raised
-- (it refuses the whole write); one raised by apply (the change refused by
-- the route's schema or rules) is the hook's failure.
local function amend_one(h, ev, apply)
  local ok, changes = call_hook(h.fn, ev, h.plugin.conf)
  if not ok then
    if errors.is(changes) then
      in_hook = false
      error(changes, 0)
    end
    return false, changes
  end
  if changes == nil then
    return true, nil
  end
  if type(changes) ~= "table" or getmetatable(changes) == json.array_mt then
    return false, ("an amend hook returns a table of changes or nil (got %s)"):format(type(changes))
  end
  if next(changes) == nil then
    return true, nil
  end
  return xpcall(apply, traceback, changes, ev.data)
end

--- True when a loaded plugin has an amend hook for `name` (so a route can
--- skip building the event data when none has).
function M.amends(name)
  return amenders[name] ~= nil and not in_hook
end

--- Runs the amend hooks of `name` (one of M.AMENDABLE, e.g. "task.created")
--- for an entity the route has just written in the open transaction, before
--- it publishes the event: `data` is the event's data as it stands ({task
--- = <Task>, ...}). Each hook, in priority order, gets event = {name,
--- project_id, data, actor, actor_id, request_id, occurred_at} and returns
--- nil or a table of changes, in the fields a client would send;
--- `apply(changes, data)` (the route's) validates them with the route's
--- schema and rules, raising a lib.errors error when they are refused,
--- writes them over the entity `data` shows (the state after the last hook
--- that succeeded) and returns the new data (a new table). Each hook runs in
--- its own savepoint; a failure is rolled back alone, logged and counted.
--- Returns the final data: `data` itself, or one apply returned.
function M.amend(name, room, data, apply)
  assert(IS_AMENDABLE[name], "plugins.amend: not an amendable event")
  local list = amenders[name]
  if list == nil or in_hook then
    return data
  end
  local ev = event_of(name, room, data)
  in_hook = true
  for _, h in ipairs(list) do
    local ok, res = in_savepoint(amend_one, h, ev, apply)
    if not ok then
      failed(h.plugin, "amend:" .. name, res)
    elseif res ~= nil then
      data = res
      ev.data = res
    end
  end
  in_hook = false
  return data
end

return M
