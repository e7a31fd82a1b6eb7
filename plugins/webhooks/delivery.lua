-- The webhooks plugin's job handler (kind `webhook`): one delivery attempt.
-- The runner has claimed the job (attempt counted, row leased) and holds no
-- transaction: the webhook is looked up, the body signed and POSTed
-- (tk.http, up to 10 s, private addresses refused unless the job allows
-- them), and only then is the attempt recorded, with the webhook's failure
-- counter, in one short transaction. The disable policy: the
-- `disableAfter`-th consecutive failure switches the webhook off (an admin
-- switches it back on) and the job gives up; any other failure is retried
-- with the runner's backoff.
local db = require "lib.db"
local jobs = require "lib.jobs"
local auth = require "tk.auth"
local http = require "tk.http"
local log = require "tk.log"

local type, tostring, tonumber = type, tostring, tonumber

local M = {}

local WEBHOOK = "SELECT url, secret, active FROM webhooks WHERE id = $1::uuid"

-- Written only while the webhook exists (it may be deleted meanwhile).
local DELIVERY = [[
  INSERT INTO webhook_deliveries
         (webhook_id, job_id, event, attempt, status_code, error, duration_ms, success)
  SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM webhooks WHERE id = $1::uuid]]

-- A success resets the failure counter; the disable_after-th consecutive
-- failure switches the webhook off.
local OUTCOME = [[
  UPDATE webhooks SET last_delivery_at = clock_timestamp(), last_status = $2::integer,
         consecutive_failures = CASE WHEN $3::boolean THEN 0 ELSE consecutive_failures + 1 END,
         disabled_at = CASE WHEN NOT $3::boolean AND active
                             AND consecutive_failures + 1 >= $4::integer
                            THEN clock_timestamp() ELSE disabled_at END,
         updated_at = CASE WHEN NOT $3::boolean AND active
                            AND consecutive_failures + 1 >= $4::integer
                           THEN clock_timestamp() ELSE updated_at END,
         active = CASE WHEN NOT $3::boolean AND consecutive_failures + 1 >= $4::integer
                       THEN false ELSE active END
   WHERE id = $1::uuid
  RETURNING active, consecutive_failures]]

local NEVER = 2147483647

--- The handler: job.payload = {webhookId, event, body, disableAfter, allowPrivate}.
function M.run(job)
  local p = job.payload
  local webhook_id, event, body = p.webhookId, p.event, p.body
  if type(webhook_id) ~= "string" or type(event) ~= "string" or type(body) ~= "string" then
    return jobs.cancel("webhook job without webhookId, event or body")
  end
  local w = db.one(WEBHOOK, webhook_id)
  if not w then
    return jobs.cancel("webhook deleted")
  end
  if not w.active then
    return jobs.cancel("webhook disabled")
  end
  local res = http.post(w.url, {
    body = body,
    allow_private = p.allowPrivate == true,
    headers = {
      ["Content-Type"] = "application/json",
      ["X-Taskapi-Event"] = event,
      ["X-Taskapi-Delivery"] = tostring(job.id),
      ["X-Taskapi-Signature"] = "sha256=" .. auth.hmac_sha256(w.secret, body),
    },
  })
  local disable_after = tonumber(p.disableAfter)
  if not disable_after or disable_after <= 0 then
    disable_after = NEVER
  end
  local status = res.status > 0 and res.status or nil
  local row = db.tx(function()
    db.query(DELIVERY, webhook_id, job.id, event, job.attempt, status,
      not res.ok and res.error or nil, res.duration_ms, res.ok)
    return db.one(OUTCOME, webhook_id, status, res.ok, disable_after)
  end)
  if res.ok then
    log.info("jobs: webhook %s: %s delivered (job %s, HTTP %d, %d ms)", webhook_id, event,
      tostring(job.id), res.status, res.duration_ms)
    return nil
  end
  if row and not row.active then
    log.warn("jobs: webhook %s disabled after %d consecutive failures (last: %s)", webhook_id,
      row.consecutive_failures, res.error)
    return jobs.give_up(("%s; webhook disabled after %d consecutive failures"):format(res.error,
      row.consecutive_failures))
  end
  return jobs.retry(res.error)
end

return M
