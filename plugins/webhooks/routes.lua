-- The webhooks API, for a project's admins and owner (and global admins):
--   POST   /projects/:id/webhooks      create (the secret is shown once, here)
--   GET    /projects/:id/webhooks      list, oldest first
--   GET    /webhooks/:id               one
--   PATCH  /webhooks/:id               url, secret, events, active
--                                      (active=true re-enables and resets the failure count)
--   DELETE /webhooks/:id               delete (pending deliveries are dropped)
--   POST   /webhooks/:id/ping          queue a `webhook.ping` delivery
--   GET    /webhooks/:id/deliveries    the delivery log, newest first
-- A webhook of a project the caller may not read is a 404; one the caller
-- may read but not administer is a 403 (policies.permissions, project.update).
local route = require "lib.route"
local db = require "lib.db"
local json = require "lib.json"
local errors = require "lib.errors"
local cursor = require "lib.cursor"
local projects = require "lib.projects"
local uuid = require "lib.uuid"
local auth = require "tk.auth"
local S = require "plugins.webhooks.schema"

local ipairs, tonumber, type, tostring, pcall, error = ipairs, tonumber, type, tostring, pcall, error
local tointeger = math.tointeger

local M = {}

-- ---- SQL ---------------------------------------------------------------------

local COLUMNS = [[
  w.id, w.project_id, w.url, w.events, w.active, w.consecutive_failures, w.disabled_at,
  w.last_delivery_at, w.last_status, w.created_at, w.updated_at]]

local INSERT = [[
  INSERT INTO webhooks AS w (project_id, url, secret, events, active, created_by)
  VALUES ($1, $2, $3, $4::text[], $5, $6)
  RETURNING ]] .. COLUMNS

local COUNT = "SELECT count(*) AS n FROM webhooks WHERE project_id = $1 AND project_deleted_at IS NULL"

local LOAD = "SELECT " .. COLUMNS .. [[
   FROM webhooks w WHERE w.id = $1 AND w.project_deleted_at IS NULL]]
local LOAD_LOCKED = LOAD .. " FOR UPDATE"

local LIST = "SELECT " .. COLUMNS .. [[
   FROM webhooks w
  WHERE w.project_id = $1 AND w.project_deleted_at IS NULL
    AND ($2::timestamptz IS NULL OR (w.created_at, w.id) > ($2::timestamptz, $3::uuid))
  ORDER BY w.created_at, w.id
  LIMIT $4]]

-- $4: whether `events` is named at all ($5 is then the new list, or NULL for
-- "every event"). active = true also clears the failure state.
local UPDATE = [[
  UPDATE webhooks AS w SET
    url = coalesce($2, url),
    secret = coalesce($3, secret),
    events = CASE WHEN $4::boolean THEN $5::text[] ELSE events END,
    active = coalesce($6::boolean, active),
    consecutive_failures = CASE WHEN $6::boolean IS TRUE THEN 0 ELSE consecutive_failures END,
    disabled_at = CASE WHEN $6::boolean IS NOT NULL THEN NULL ELSE disabled_at END,
    updated_at = now()
  WHERE id = $1
  RETURNING ]] .. COLUMNS

local DELETE = "DELETE FROM webhooks WHERE id = $1"

-- Pending deliveries of a deleted webhook would only be dropped by the
-- runner; dropping them here keeps the jobs table honest.
local DROP_PENDING = [[
  UPDATE jobs SET status = 'failed', last_error = 'webhook deleted', finished_at = now()
   WHERE kind = 'webhook' AND status = 'pending' AND payload->>'webhookId' = $1::text]]

local PING = [[
  INSERT INTO jobs (kind, payload, max_attempts)
  SELECT 'webhook', jsonb_build_object('webhookId', w.id, 'event', 'webhook.ping', 'body', $2::text,
           'disableAfter', $3::integer, 'allowPrivate', $4::boolean), $5::integer
    FROM webhooks w WHERE w.id = $1
  RETURNING id]]

local DELIVERIES = [[
  SELECT id, job_id, event, attempt, status_code, error, duration_ms, success, created_at
    FROM webhook_deliveries
   WHERE webhook_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint)
   ORDER BY id DESC
   LIMIT $3]]

-- ---- helpers -------------------------------------------------------------------

local SECRET_PREFIX = "whsec_"

local function public(row, secret)
  return {
    id = row.id,
    projectId = row.project_id,
    url = row.url,
    events = row.events and json.array(row.events) or json.null,
    active = row.active,
    disabledAt = json.nullable(row.disabled_at),
    consecutiveFailures = row.consecutive_failures,
    lastDeliveryAt = json.nullable(row.last_delivery_at),
    lastStatus = json.nullable(row.last_status),
    createdAt = row.created_at,
    updatedAt = row.updated_at,
    secret = secret, -- only when just created or changed
  }
end

local function delivery_public(row)
  return {
    id = tostring(row.id),
    deliveryId = tostring(row.job_id),
    event = row.event,
    attempt = row.attempt,
    statusCode = json.nullable(row.status_code),
    error = json.nullable(row.error),
    durationMs = row.duration_ms,
    success = row.success,
    createdAt = row.created_at,
  }
end

local function list_answer(items, limit, next_cursor)
  return 200, { data = json.array(items), meta = { limit = limit, nextCursor = next_cursor } }
end

local function webhook_not_found()
  errors.not_found("webhook not found")
end

local function bad_cursor()
  errors.raise(400, "invalid_parameter", "invalid cursor",
    { { field = "cursor", message = "is not a valid cursor" } })
end

local TIME_PATTERN = "^%d%d%d%d%-[01]%d%-[0-3]%dT[0-2]%d:[0-5]%d:[0-5]%d%.%d%d%dZ$"

local function v4_private(a, b)
  return a == 0 or a == 10 or a == 127 or a >= 224 or (a == 100 and b >= 64 and b <= 127)
    or (a == 169 and b == 254) or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168)
end

-- True when the URL names a loopback or private host literally. The job
-- runner checks the resolved address too; this answers early with a 422.
local function private_url(u)
  local authority = u:match("^%a[%w+.-]*://([^/?#]*)") or ""
  local v6 = authority:match("^%[([^%]]*)%]")
  if v6 then
    v6 = v6:lower()
    return v6 == "::" or v6 == "::1" or v6:match("^f[cd]") ~= nil or v6:match("^fe[89ab]") ~= nil
      or v6:match("^::ffff:") ~= nil or v6:match("^ff") ~= nil
  end
  local host = (authority:match("^[^:]*") or ""):lower()
  if host == "localhost" or host:match("%.localhost$") then
    return true
  end
  local a, b = host:match("^(%d+)%.(%d+)%.%d+%.%d+$")
  return a ~= nil and v4_private(tonumber(a), tonumber(b))
end

local function check_url(conf, u)
  if u ~= nil and not conf.allow_private_urls and private_url(u) then
    errors.field("url", "must not point to a loopback or private network address")
  end
end

-- The webhook `id` with its project, for a caller who administers it.
local function load_for_admin(user, id, lock)
  if not uuid.valid(id) then
    webhook_not_found()
  end
  local w = db.one(lock and LOAD_LOCKED or LOAD, id)
  if not w then
    webhook_not_found()
  end
  local p = projects.load(user, w.project_id)
  if p == nil then
    webhook_not_found()
  end
  local ok, err = pcall(projects.authorize, user, "project.update", p)
  if not ok then
    if errors.is(err) and err.status == 404 then
      webhook_not_found()
    end
    error(err, 0)
  end
  return w, p
end

local function events_param(events)
  if events == json.null then
    return nil
  end
  return events
end

-- ---- routes ------------------------------------------------------------------------

--- The route group, for the plugin's settings `conf`.
function M.build(conf)
  local r = route.group("/api/v1")
  local tags = { "webhooks" }

  r:post("/projects/:id/webhooks", { body = S.create, status = 201, tags = tags,
    summary = "Add a webhook to a project (admin and up); its secret is shown only here" },
    function(req)
      local b = req.body
      if not uuid.valid(req.params.id) then
        errors.not_found("project not found")
      end
      check_url(conf, b.url)
      local secret = b.secret or (SECRET_PREFIX .. auth.random_token())
      local row = db.tx(function()
        local p = projects.get(req.user, req.params.id, "project.update", nil, true)
        if db.one(COUNT, p.id).n >= conf.max_per_project then
          errors.conflict(("a project has at most %d webhooks"):format(conf.max_per_project))
        end
        return db.one(INSERT, p.id, b.url, secret, events_param(b.events), b.active ~= false,
          req.user.id)
      end)
      return 201, { data = public(row, secret) }
    end)

  r:get("/projects/:id/webhooks", { query = S.list, tags = tags,
    summary = "A project's webhooks, oldest first (admin and up)" }, function(req)
    local p = projects.get(req.user, req.params.id, "project.update")
    local q = req.query
    local after = {}
    if q.cursor then
      after = cursor.decode(q.cursor, 2)
      if type(after[1]) ~= "string" or not after[1]:match(TIME_PATTERN) or not uuid.valid(after[2]) then
        bad_cursor()
      end
    end
    local rows = db.query(LIST, p.id, after[1], after[2], q.limit + 1)
    local page, next_cursor = cursor.page(rows, q.limit, function(row)
      return { row.created_at, row.id }
    end)
    local items = {}
    for i, row in ipairs(page) do
      items[i] = public(row)
    end
    return list_answer(items, q.limit, next_cursor)
  end)

  r:get("/webhooks/:id", { tags = tags, summary = "One webhook (admin and up)" }, function(req)
    local w = load_for_admin(req.user, req.params.id)
    return 200, { data = public(w) }
  end)

  r:patch("/webhooks/:id", { body = S.update, tags = tags,
    summary = "Change a webhook; active=true re-enables it and resets its failure count" },
    function(req)
      local b = req.body
      check_url(conf, b.url)
      local row = db.tx(function()
        local w = load_for_admin(req.user, req.params.id, true)
        return db.one(UPDATE, w.id, b.url, b.secret, b.events ~= nil, events_param(b.events),
          b.active)
      end)
      return 200, { data = public(row, b.secret) }
    end)

  r:delete("/webhooks/:id", { status = 204, tags = tags,
    summary = "Delete a webhook; its pending deliveries are dropped" }, function(req)
    db.tx(function()
      -- Jobs first, webhook row last: a runner holding one of its jobs
      -- finishes it (taking the webhook row) before this takes anything.
      local w = load_for_admin(req.user, req.params.id)
      db.query(DROP_PENDING, w.id)
      db.query(DELETE, w.id)
    end)
    return 204
  end)

  r:post("/webhooks/:id/ping", { status = 202, tags = tags,
    summary = "Queue a webhook.ping delivery to test the receiver" }, function(req)
    local job = db.tx(function()
      local w = load_for_admin(req.user, req.params.id, true)
      if not w.active then
        errors.conflict("the webhook is disabled; re-enable it with PATCH active=true")
      end
      local body = json.encode({ id = auth.uuid(), event = "webhook.ping",
        createdAt = db.one("SELECT now()::timestamptz(3) AS t").t, projectId = w.project_id,
        actor = { id = req.user.id }, data = { webhookId = w.id } })
      return db.one(PING, w.id, body, conf.disable_after, conf.allow_private_urls,
        conf.max_attempts)
    end)
    return 202, { data = { deliveryId = tostring(job.id) } }
  end)

  r:get("/webhooks/:id/deliveries", { query = S.list, tags = tags,
    summary = "The webhook's delivery log, newest attempt first (admin and up)" }, function(req)
    local w = load_for_admin(req.user, req.params.id)
    local q = req.query
    local before
    if q.cursor then
      before = tointeger(cursor.decode(q.cursor, 1)[1])
      if before == nil or before < 1 then
        bad_cursor()
      end
    end
    local rows = db.query(DELIVERIES, w.id, before, q.limit + 1)
    local page, next_cursor = cursor.page(rows, q.limit, function(row)
      return { row.id }
    end)
    local items = {}
    for i, row in ipairs(page) do
      items[i] = delivery_public(row)
    end
    return list_answer(items, q.limit, next_cursor)
  end)

  return r
end

return M
