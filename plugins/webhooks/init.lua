-- The webhooks plugin: per-project webhooks that receive every domain event
-- (or the ones they name) as a signed JSON POST.
--
-- The domain hook runs inside the change's transaction and only enqueues:
-- one `jobs` row (kind 'webhook') per active webhook of the project, so a
-- delivery exists exactly when the change commits. The plugin's job
-- handler (delivery.lua, registered in init) sends it through tk.http, signs
-- the raw body with the webhook's secret (X-Taskapi-Signature:
-- sha256=<hex HMAC-SHA256>), records every attempt in webhook_deliveries and
-- disables the webhook after `disable_after` consecutive failures; the job
-- runner retries with exponential backoff. Tables: migrations/. The API
-- (routes.lua) manages webhooks and reads the delivery log.
--
-- The body of every delivery:
--   {"id": "<event uuid>", "event": "task.created", "createdAt": "<RFC 3339>",
--    "projectId": "<uuid>", "actor": {"id": "<uuid>"} | null, "data": {...}}
-- where data is the realtime event's data (API.md §8).
local db = require "lib.db"
local json = require "lib.json"
local auth = require "tk.auth"
local jobs = require "lib.jobs"
local delivery = require "plugins.webhooks.delivery"
local S = require "plugins.webhooks.schema"
local routes = require "plugins.webhooks.routes"

-- One job per active webhook of the project that wants the event.
local ENQUEUE = [[
  INSERT INTO jobs (kind, payload, max_attempts)
  SELECT 'webhook', jsonb_build_object('webhookId', w.id, 'event', $2::text, 'body', $3::text,
           'disableAfter', $4::integer, 'allowPrivate', $5::boolean), $6::integer
    FROM webhooks w
   WHERE w.project_id = $1::uuid AND w.active AND w.project_deleted_at IS NULL
     AND (w.events IS NULL OR $2::text = ANY (w.events))]]

-- The project is gone: its webhooks stop getting events but keep their
-- pending deliveries (project.deleted itself among them).
local MARK_PROJECT_DELETED = [[
  UPDATE webhooks SET project_deleted_at = now(), updated_at = now()
   WHERE project_id = $1::uuid AND project_deleted_at IS NULL]]

local function on_event(ev, conf)
  if ev.project_id == nil then
    return
  end
  local body = json.encode({
    id = auth.uuid(),
    event = ev.name,
    createdAt = ev.occurred_at,
    projectId = ev.project_id,
    actor = ev.actor_id and { id = ev.actor_id } or json.null,
    data = ev.data,
  })
  db.query(ENQUEUE, ev.project_id, ev.name, body, conf.disable_after, conf.allow_private_urls,
    conf.max_attempts)
  if ev.name == "project.deleted" then
    db.query(MARK_PROJECT_DELETED, ev.project_id)
  end
end

return {
  name = "webhooks",
  version = "1.0.0",
  priority = 100, -- after plugins that record (activity): delivery is the last word
  description = "Signed HMAC-SHA256 webhooks of domain events, per project, with retries",
  schema = S.settings,
  init = function()
    jobs.handle("webhook", delivery.run)
  end,
  routes = routes.build,
  hooks = { ["*"] = on_event },
}
