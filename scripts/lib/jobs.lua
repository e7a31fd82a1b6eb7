-- Durable background work: a job is a row in `jobs`, written in the caller's
-- transaction (so it exists only if the change commits) and run by the C job
-- runner, which claims it (counts the attempt, leases the row), runs it
-- holding no transaction, records the outcome, retries with backoff and
-- never loses one on a crash (a killed run's lease ends and it runs again).
--
-- `email` is the runner's own kind (C: SMTP or MAIL_DIR). Every other kind
-- runs the Lua handler a script or plugin registered for it with
-- jobs.handle, in the runner's own VM of the current script generation:
--
--   jobs.handle("audit.export", function(job)
--     -- job = {id, kind, payload (decoded), attempt (1-based), max_attempts}
--     local res = http.post(url, { body = ..., headers = {...} })
--     if not res.ok then return jobs.retry(res.error) end  -- or error(...)
--   end)                                                  -- nothing: done
--
-- The runner claims only jobs of the kinds its VM has a handler for
-- (jobs.kinds, read again at every reload): a job of a kind this instance
-- does not handle (its plugin is enabled on another instance only, or not
-- yet deployed here) stays pending, its attempts untouched, until an
-- instance that handles it runs it; meanwhile it is counted in
-- taskapi_jobs_unhandled{kind} and logged once per kind.
local json = require "lib.json"
local db = require "lib.db"
local log = require "tk.log"
local runtime = require "tk.runtime"
local errors = require "lib.errors"

local type, error, tostring, xpcall, setmetatable = type, error, tostring, xpcall, setmetatable
local getmetatable = getmetatable

local M = {}

-- Handlers of this VM by kind (rebuilt with every generation: registered
-- while the scripts load).
local handlers = {}

local KIND = "^[a-z][a-z0-9_]*$"

local function kind_ok(kind)
  if type(kind) ~= "string" or #kind > 64 then
    return false
  end
  for part in (kind .. "."):gmatch("([^.]*)%.") do
    if not part:match(KIND) then
      return false
    end
  end
  return true
end

--- Enqueues a job of `kind` with a JSON payload. opts.delay: seconds before
--- it may run; opts.max_attempts (default 10). Returns the job id.
function M.enqueue(kind, payload, opts)
  if not kind_ok(kind) then
    error(("jobs.enqueue: '%s' is not a job kind (dotted lower-case words)"):format(tostring(kind)), 2)
  end
  local delay = opts and opts.delay or 0
  local max_attempts = opts and opts.max_attempts or 10
  local row = db.one([[
    INSERT INTO jobs (kind, payload, run_at, max_attempts)
    VALUES ($1, $2::jsonb, now() + make_interval(secs => $3), $4) RETURNING id]],
    kind, json.encode(payload), delay, max_attempts)
  return row.id
end

--- Registers fn(job) as the handler of jobs of `kind` (any kind but
--- "email"). Call it while the scripts load (a module's top level, or a
--- plugin's init(conf)). A second handler for a kind is an error.
function M.handle(kind, fn)
  if not kind_ok(kind) or kind == "email" then
    error(("jobs.handle: '%s' is not a kind a handler may take"):format(tostring(kind)), 2)
  end
  if type(fn) ~= "function" then
    error("jobs.handle: the handler must be a function", 2)
  end
  if handlers[kind] then
    error(("jobs.handle: kind '%s' already has a handler"):format(kind), 2)
  end
  handlers[kind] = fn
end

--- The kinds with a handler in this VM (sorted): the job runner claims
--- jobs of these kinds only (runtime/jobs/runner.c).
function M.kinds()
  local out = {}
  for k in pairs(handlers) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

local OUTCOME = {}
OUTCOME.__index = OUTCOME

local function outcome(what, reason)
  return setmetatable({ outcome = what, reason = tostring(reason or what) }, OUTCOME)
end

--- Handler results other than "done" (returning nothing): try again after
--- the backoff (the last attempt fails the job) ...
function M.retry(reason)
  return outcome("retry", reason)
end

--- ... failed for good, this attempt counted ...
function M.give_up(reason)
  return outcome("give_up", reason)
end

--- ... or never attempted (its target is gone): failed, the attempt not counted.
function M.cancel(reason)
  return outcome("cancel", reason)
end

local function traceback(e)
  if errors.is(e) then
    return tostring(e.message or e.code or "error")
  end
  return runtime.traceback(tostring(e), 2)
end

--- Called by the C runner (jobs/runner.c) for one claimed job: returns the
--- outcome ("done", "retry", "give_up", "cancel") and a reason; "unknown"
--- only if the handler went away after the runner read jobs.kinds() (the
--- runner logs it and retries).
--- A handler that raises is a retry whose reason is its error (file:line).
function M.run(kind, payload_json, id, attempt, max_attempts)
  local fn = handlers[kind]
  if not fn then
    return "unknown", ("no handler for job kind '%s' (jobs.handle)"):format(kind)
  end
  local payload = json.decode(payload_json)
  if payload == nil then
    return "give_up", "the payload is not JSON"
  end
  local job = { id = id, kind = kind, payload = payload, attempt = attempt,
    max_attempts = max_attempts }
  local ok, res = xpcall(fn, traceback, job)
  if not ok then
    res = tostring(res)
    log.warn("jobs: job %s (%s) attempt %d raised: %s", tostring(id), kind, attempt, res)
    return "retry", res:match("^[^\n]*")
  end
  if res == nil or res == true then
    return "done", ""
  end
  if getmetatable(res) == OUTCOME then
    return res.outcome, res.reason
  end
  return "retry", ("the handler of '%s' returned %s, not nothing or a jobs outcome"):format(kind,
    tostring(res))
end

return M
