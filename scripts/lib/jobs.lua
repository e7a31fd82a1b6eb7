-- Durable background work: a job is a row in `jobs`, written in the caller's
-- transaction (so it exists only if the change commits) and run by the C job
-- runner, which retries with backoff and never loses one on a crash.
local db = require "lib.db"
local json = require "lib.json"

local M = {}

--- Enqueues a job of `kind` ("email", "webhook") with a JSON payload.
--- opts.delay: seconds before it may run. Returns the job id.
function M.enqueue(kind, payload, opts)
  local delay = opts and opts.delay or 0
  local row = db.one(
    "INSERT INTO jobs (kind, payload, run_at) VALUES ($1, $2::jsonb, now() + make_interval(secs => $3)) RETURNING id",
    kind, json.encode(payload), delay)
  return row.id
end

return M
