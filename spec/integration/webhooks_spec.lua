-- The webhooks plugin (plugins/webhooks) against a real HTTP receiver
-- (support/webhook_receiver.js): the API and its permissions, signed
-- deliveries whose signature verifies, retries with backoff until the
-- receiver answers 2xx, the delivery log, automatic disabling after
-- repeated failures and an admin's re-enabling, the events filter, and no
-- delivery lost when the server is SIGKILLed in the middle of one.
--
-- Needs the suite's server to run with PLUGINS=webhooks,activity,
-- PLUGINS_CONFIG=spec/integration/plugins.json (allow_private_urls: the
-- receiver is on 127.0.0.1), JOB_POLL_MS=50 and JOB_BACKOFF_BASE_MS=100:
-- spec/integration/server.env says so to bin/test.
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"
local cjson = require "cjson"
local socket = require "socket"

local api = E.api()
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"
local WEBHOOK_KEYS = "active,consecutiveFailures,createdAt,disabledAt,events,id,lastDeliveryAt,"
  .. "lastStatus,projectId,updatedAt,url"
local DELIVERY_KEYS = "attempt,createdAt,deliveryId,durationMs,error,event,id,statusCode,success"

local function create_webhook(user, project_id, body)
  return api.call("POST", "/projects/" .. project_id .. "/webhooks", user.access, body)
end

local function webhook(user, id)
  return h.expect_status(api.call("GET", "/webhooks/" .. id, user.access), 200).data
end

local function deliveries(user, id, query)
  return h.expect_status(api.call("GET", "/webhooks/" .. id .. "/deliveries" .. (query or ""),
    user.access), 200)
end

describe("webhooks plugin", function()
  local recv, owner, admin, member, viewer, outsider, project

  setup(function()
    local res = h.call("GET", "/api/v1/openapi.json")
    assert(res.body and res.body.paths and res.body.paths["/api/v1/projects/{id}/webhooks"],
      "the test server runs without the webhooks plugin: start it with the variables of "
      .. "spec/integration/server.env (bin/test does)")
    recv = E.receiver()
    owner, admin, member = api.user("Owner"), api.user("Admin"), api.user("Member")
    viewer, outsider = api.user("Viewer"), api.user("Outsider")
    project = api.project(owner, { { admin, "admin" }, { member, "member" }, { viewer, "viewer" } })
  end)

  teardown(function()
    if recv then
      recv:stop()
    end
    E.cleanup()
  end)

  describe("the API", function()
    it("creates a webhook (201), shows the generated secret once, never again", function()
      local url = recv:url()
      local res = create_webhook(admin, project, { url = url })
      local w = h.expect_status(res, 201).data
      assert.are.equal(WEBHOOK_KEYS:gsub("projectId,", "projectId,secret,"), h.keys(w))
      assert.matches(UUID, w.id)
      assert.are.equal(project, w.projectId)
      assert.are.equal(url, w.url)
      assert.are.equal(h.null, w.events)
      assert.is_true(w.active)
      assert.are.equal(0, w.consecutiveFailures)
      assert.are.equal(h.null, w.disabledAt)
      assert.matches(TIME, w.createdAt)
      assert.matches("^whsec_[%w_-]+$", w.secret)
      assert.is_true(#w.secret >= 40)

      local again = webhook(owner, w.id)
      assert.are.equal(WEBHOOK_KEYS, h.keys(again))
      local list = h.expect_status(api.call("GET", "/projects/" .. project .. "/webhooks",
        owner.access), 200)
      local found
      for _, x in ipairs(list.data) do
        assert.is_nil(x.secret)
        found = found or x.id == w.id
      end
      assert.is_true(found)
    end)

    it("keeps a given secret and an events list", function()
      local w = h.expect_status(create_webhook(owner, project, { url = recv:url(),
        secret = "a-secret-of-the-client-1234", events = { "task.created", "comment.created" } }),
        201).data
      assert.are.equal("a-secret-of-the-client-1234", w.secret)
      assert.are.same({ "task.created", "comment.created" }, w.events)
    end)

    it("is for admins and the owner: member and viewer 403, outsider of a private project 404",
      function()
        local body = { url = recv:url() }
        h.expect_error(create_webhook(member, project, body), 403, "forbidden")
        h.expect_error(create_webhook(viewer, project, body), 403, "forbidden")
        h.expect_error(create_webhook(outsider, project, body), 404, "not_found")
        h.expect_error(api.call("GET", "/projects/" .. project .. "/webhooks", member.access), 403,
          "forbidden")
        local w = h.expect_status(create_webhook(owner, project, body), 201).data
        h.expect_error(api.call("GET", "/webhooks/" .. w.id, member.access), 403, "forbidden")
        h.expect_error(api.call("GET", "/webhooks/" .. w.id, outsider.access), 404, "not_found")
        h.expect_error(api.call("PATCH", "/webhooks/" .. w.id, member.access, { active = false }),
          403, "forbidden")
        h.expect_error(api.call("DELETE", "/webhooks/" .. w.id, outsider.access), 404, "not_found")
        h.expect_error(api.call("GET", "/webhooks/" .. w.id .. "/deliveries", viewer.access), 403,
          "forbidden")
      end)

    it("answers 404 for malformed and unknown ids, 401 without a token", function()
      h.expect_error(api.call("GET", "/webhooks/not-a-uuid", owner.access), 404, "not_found")
      h.expect_error(api.call("GET", "/webhooks/00000000-0000-4000-8000-000000000000", owner.access),
        404, "not_found")
      h.expect_error(create_webhook(owner, "nope", { url = recv:url() }), 404, "not_found")
      h.expect_error(api.call("GET", "/projects/" .. project .. "/webhooks"), 401, "unauthorized")
    end)

    it("validates the body: url http(s), events known and not empty, no unknown fields", function()
      h.expect_validation(create_webhook(owner, project, {}), { "url" })
      h.expect_validation(create_webhook(owner, project, { url = "ftp://example.com/x" }), { "url" })
      h.expect_validation(create_webhook(owner, project, { url = "not a url" }), { "url" })
      h.expect_validation(create_webhook(owner, project, { url = recv:url(), events = {} }),
        { "events" })
      h.expect_validation(create_webhook(owner, project, { url = recv:url(),
        events = { "task.exploded" } }), { "events[0]" })
      h.expect_validation(create_webhook(owner, project, { url = recv:url(), secret = "short" }),
        { "secret" })
      h.expect_validation(create_webhook(owner, project, { url = recv:url(), colour = "red" }),
        { "colour" })
    end)

    it("lists a project's webhooks oldest first with a keyset cursor", function()
      local p = api.project(owner)
      local ids = {}
      for i = 1, 3 do
        ids[i] = h.expect_status(create_webhook(owner, p, { url = recv:url() }), 201).data.id
      end
      local seen, cursor = {}, nil
      repeat
        local res = h.expect_status(api.call("GET", "/projects/" .. p .. "/webhooks?limit=2"
          .. (cursor and "&cursor=" .. cursor or ""), owner.access), 200)
        assert.are.equal(2, res.meta.limit)
        for _, w in ipairs(res.data) do
          seen[#seen + 1] = w.id
        end
        cursor = res.meta.nextCursor ~= h.null and res.meta.nextCursor or nil
      until not cursor
      assert.are.same(ids, seen)
      h.expect_error(api.call("GET", "/projects/" .. p .. "/webhooks?cursor=garbage", owner.access),
        400, "invalid_parameter")
    end)

    it("deletes a webhook (204); it is gone and its pending deliveries are dropped", function()
      local p = api.project(owner)
      local url, path = recv:url({ codes = "500", delays = "0" })
      local w = h.expect_status(create_webhook(owner, p, { url = url }), 201).data
      api.task(owner, p)
      recv:wait(path, 1)
      h.expect_status(api.call("DELETE", "/webhooks/" .. w.id, owner.access), 204)
      h.expect_error(api.call("GET", "/webhooks/" .. w.id, owner.access), 404, "not_found")
      assert.are.equal("0", h.psql(("SELECT count(*) FROM jobs WHERE kind = 'webhook' AND "
        .. "status = 'pending' AND payload->>'webhookId' = %s"):format(h.sql_literal(w.id))))
      assert.are.equal("0", h.psql("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = "
        .. h.sql_literal(w.id)))
    end)
  end)

  describe("deliveries", function()
    it("POSTs a signed JSON body: the HMAC-SHA256 of the raw body with the secret verifies",
      function()
        local p = api.project(owner)
        local secret = "the-secret-for-signing-" .. h.unique_password()
        local url, path = recv:url()
        h.expect_status(create_webhook(owner, p, { url = url, secret = secret }), 201)
        -- a body over 1 KiB: no "Expect: 100-continue" round trip, signed all the same
        local task = api.task(owner, p, { title = "signed", description = ("long text "):rep(300) })
        local req = recv:wait(path, 1)[1]
        assert.is_table(req, "no delivery arrived")
        assert.are.equal("POST", req.method)
        assert.are.equal("application/json", req.headers["content-type"])
        assert.are.equal("task.created", req.headers["x-taskapi-event"])
        assert.matches("^%d+$", req.headers["x-taskapi-delivery"])
        assert.are.equal("sha256=" .. E.hmac_hex(secret, req.body), req.headers["x-taskapi-signature"])
        assert.are_not.equal("sha256=" .. E.hmac_hex(secret .. "x", req.body),
          req.headers["x-taskapi-signature"])
        local body = cjson.decode(req.body)
        assert.are.equal("actor,createdAt,data,event,id,projectId", h.keys(body))
        assert.are.equal("task.created", body.event)
        assert.are.equal(p, body.projectId)
        assert.are.equal(owner.id, body.actor.id)
        assert.matches(UUID, body.id)
        assert.matches(TIME, body.createdAt)
        assert.are.equal(task.id, body.data.task.id)
        assert.are.equal("signed", body.data.task.title)
        assert.is_true(#req.body > 3000)
        assert.is_nil(req.headers["expect"])
      end)

    it("a receiver that fails 3 times gets the event on the 4th attempt; the log shows each",
      function()
        local p = api.project(owner)
        local url, path = recv:url({ codes = "500,502,503,200" })
        local w = h.expect_status(create_webhook(owner, p, { url = url }), 201).data
        local t0 = h.now()
        api.task(owner, p)
        local reqs = recv:wait(path, 4)
        assert.are.equal(4, #reqs)
        -- the same delivery, body and signature every time; waits grow (100, 200, 400 ms)
        for i = 2, 4 do
          assert.are.equal(reqs[1].headers["x-taskapi-delivery"], reqs[i].headers["x-taskapi-delivery"])
          assert.are.equal(reqs[1].body, reqs[i].body)
          assert.are.equal(reqs[1].headers["x-taskapi-signature"], reqs[i].headers["x-taskapi-signature"])
        end
        assert.is_true(h.now() - t0 >= 0.6, "retries came too fast for a 100 ms doubling backoff")
        local log = E.wait_for(5, function()
          local d = deliveries(owner, w.id).data
          return #d == 4 and d or nil
        end)
        assert.is_table(log, "the delivery log does not have 4 attempts")
        assert.are.equal(DELIVERY_KEYS, h.keys(log[1]))
        assert.are.same({ 4, 3, 2, 1 }, { log[1].attempt, log[2].attempt, log[3].attempt, log[4].attempt })
        assert.are.same({ 200, 503, 502, 500 },
          { log[1].statusCode, log[2].statusCode, log[3].statusCode, log[4].statusCode })
        assert.is_true(log[1].success)
        assert.are.equal(h.null, log[1].error)
        assert.is_false(log[2].success)
        assert.are.equal("HTTP 503", log[2].error)
        for _, d in ipairs(log) do
          assert.are.equal("task.created", d.event)
          assert.are.equal(reqs[1].headers["x-taskapi-delivery"], d.deliveryId)
          assert.is_true(d.durationMs >= 0 and d.durationMs == math.floor(d.durationMs))
          assert.matches(TIME, d.createdAt)
        end
        local after = webhook(owner, w.id)
        assert.are.equal(0, after.consecutiveFailures)
        assert.are.equal(200, after.lastStatus)
        assert.are.equal("done|4", h.psql("SELECT status || '|' || attempts FROM jobs WHERE id = "
          .. reqs[1].headers["x-taskapi-delivery"]))
        -- the log pages newest first
        local page = deliveries(owner, w.id, "?limit=3")
        assert.are.equal(3, #page.data)
        local rest = deliveries(owner, w.id, "?limit=3&cursor=" .. page.meta.nextCursor)
        assert.are.equal(1, #rest.data)
        assert.are.equal(1, rest.data[1].attempt)
        assert.are.equal(h.null, rest.meta.nextCursor)
      end)

    it("a refused connection is a failed attempt with an error and no status code", function()
      local p = api.project(owner)
      local closed = ("http://127.0.0.1:%d/nobody-home"):format(E.free_port())
      local w = h.expect_status(create_webhook(owner, p, { url = closed }), 201).data
      api.task(owner, p)
      local log = E.wait_for(10, function()
        local d = deliveries(owner, w.id).data
        return #d >= 1 and d or nil
      end)
      assert.is_table(log, "no attempt was logged")
      assert.are.equal(h.null, log[#log].statusCode)
      assert.is_false(log[#log].success)
      assert.is_string(log[#log].error)
      assert.is_true(#log[#log].error > 0)
    end)

    it("a receiver that holds the connection does not delay mail (mail has its own lane)",
      function()
        local mail_dir = assert(os.getenv("TASKAPI_MAIL_DIR"), "TASKAPI_MAIL_DIR is not set")
        -- accepts the webhook's connection and never answers: the job in hand
        -- runs until curl's 10 s timeout
        local hold = assert(socket.bind("127.0.0.1", 0))
        local _, port = hold:getsockname()
        hold:settimeout(15)
        local p = api.project(owner)
        local w = h.expect_status(create_webhook(owner, p,
          { url = ("http://127.0.0.1:%d/hold"):format(port) }), 201).data
        api.task(owner, p)
        local conn = assert(hold:accept(), "the webhook job never connected")
        -- the webhook job is in flight; now a mail is queued behind it
        local someone = api.user("Mail Waits Not")
        h.expect_status(api.call("POST", "/auth/forgot-password", nil, { email = someone.email }), 202)
        local found = E.wait_for(15, function()
          for name in io.popen("ls " .. mail_dir):lines() do
            local f = io.open(mail_dir .. "/" .. name)
            local text = f and f:read("a") or ""
            if f then
              f:close()
            end
            if text:find(someone.email, 1, true) and text:find("reset-password", 1, true) then
              return name
            end
          end
        end)
        assert.is_string(found, "no reset mail while a webhook call was in flight")
        -- and the webhook call was still in flight when the mail was written
        assert.are.equal(0, #deliveries(owner, w.id).data)
        -- the attempt fails when the receiver hangs up; its retry waits the
        -- backoff from then, not from when the attempt began
        local closed_at = h.psql("SELECT clock_timestamp()")
        conn:close()
        hold:close()
        local job = ("(SELECT id FROM jobs WHERE kind = 'webhook' AND payload->>'webhookId' = '%s'"
          .. " ORDER BY id LIMIT 1)"):format(w.id)
        -- (the claim counted the attempt before the call: settled means an error recorded)
        assert.is_truthy(E.wait_for(10, function()
          return h.psql("SELECT last_error IS NOT NULL FROM jobs WHERE id = " .. job) == "t" or nil
        end), "the held attempt was never settled")
        assert.are.equal("t", h.psql(("SELECT run_at > '%s' FROM jobs WHERE id = %s")
          :format(closed_at, job)))
      end)

    it("delivers only the events a webhook names", function()
      local p = api.project(owner)
      local url, path = recv:url()
      h.expect_status(create_webhook(owner, p, { url = url, events = { "comment.created" } }), 201)
      local task = api.task(owner, p)
      h.expect_status(api.call("POST", "/tasks/" .. task.id .. "/comments", owner.access,
        { content = "hello" }), 201)
      recv:wait(path, 1)
      h.sleep(0.5) -- a task.created delivery, if one were wrongly queued, would have come by now
      local reqs = recv:requests(path)
      assert.are.equal(1, #reqs)
      assert.are.equal("comment.created", reqs[1].headers["x-taskapi-event"])
      assert.are.equal(task.id, cjson.decode(reqs[1].body).data.taskId)
    end)

    it("delivers nothing for a change that rolls back", function()
      local p = api.project(owner)
      local url, path = recv:url()
      h.expect_status(create_webhook(owner, p, { url = url }), 201)
      h.expect_validation(api.call("POST", "/projects/" .. p .. "/tasks", owner.access,
        { title = "x", assigneeId = outsider.id }), { "assigneeId" })
      api.task(owner, p, { title = "committed" })
      recv:wait(path, 1)
      h.sleep(0.3)
      local reqs = recv:requests(path)
      assert.are.equal(1, #reqs)
      assert.are.equal("committed", cjson.decode(reqs[1].body).data.task.title)
    end)

    it("still delivers project.deleted after the project is gone", function()
      local p = api.project(owner)
      local url, path = recv:url()
      h.expect_status(create_webhook(owner, p, { url = url, events = { "project.deleted" } }), 201)
      h.expect_status(api.call("DELETE", "/projects/" .. p, owner.access), 204)
      local req = recv:wait(path, 1)[1]
      assert.is_table(req, "project.deleted was not delivered")
      assert.are.equal("project.deleted", req.headers["x-taskapi-event"])
      assert.are.equal(p, cjson.decode(req.body).data.projectId)
    end)

    it("POST /webhooks/:id/ping queues a webhook.ping delivery (202)", function()
      local p = api.project(owner)
      local url, path = recv:url()
      local w = h.expect_status(create_webhook(owner, p, { url = url, events = { "task.deleted" } }),
        201).data
      local d = h.expect_status(api.call("POST", "/webhooks/" .. w.id .. "/ping", owner.access), 202)
        .data
      local req = recv:wait(path, 1)[1]
      assert.is_table(req, "the ping did not arrive")
      assert.are.equal("webhook.ping", req.headers["x-taskapi-event"])
      assert.are.equal(d.deliveryId, req.headers["x-taskapi-delivery"])
      assert.are.equal(w.id, cjson.decode(req.body).data.webhookId)
    end)
  end)

  describe("automatic disabling", function()
    it("disables a webhook after 5 consecutive failures and stops queueing; an admin re-enables it",
      function()
        local p = api.project(owner, { { admin, "admin" }, { member, "member" } })
        local url, path = recv:url({ codes = "503" })
        local w = h.expect_status(create_webhook(owner, p, { url = url }), 201).data
        api.task(owner, p, { title = "first" })
        local disabled = E.wait_for(15, function()
          local x = webhook(owner, w.id)
          return not x.active and x or nil
        end)
        assert.is_table(disabled, "the webhook was not disabled")
        assert.are.equal(5, disabled.consecutiveFailures)
        assert.matches(TIME, disabled.disabledAt)
        assert.are.equal(503, disabled.lastStatus)
        assert.are.equal(5, #recv:requests(path))
        -- the job is given up, and new events are not queued
        local job = recv:requests(path)[1].headers["x-taskapi-delivery"]
        assert.matches("^failed|5|HTTP 503; webhook disabled after 5 consecutive failures$",
          h.psql("SELECT status || '|' || attempts || '|' || last_error FROM jobs WHERE id = " .. job))
        api.task(owner, p, { title = "while disabled" })
        assert.are.equal("0", h.psql(("SELECT count(*) FROM jobs WHERE kind = 'webhook' AND "
          .. "payload->>'webhookId' = %s AND status = 'pending'"):format(h.sql_literal(w.id))))
        h.sleep(0.3)
        assert.are.equal(5, #recv:requests(path))
        h.expect_error(api.call("POST", "/webhooks/" .. w.id .. "/ping", owner.access), 409, "conflict")

        -- a member may not re-enable it; an admin may (and points it at a healthy URL)
        h.expect_error(api.call("PATCH", "/webhooks/" .. w.id, member.access, { active = true }), 403,
          "forbidden")
        local good_url, good_path = recv:url()
        local back = h.expect_status(api.call("PATCH", "/webhooks/" .. w.id, admin.access,
          { active = true, url = good_url }), 200).data
        assert.is_true(back.active)
        assert.are.equal(0, back.consecutiveFailures)
        assert.are.equal(h.null, back.disabledAt)
        assert.are.equal(good_url, back.url)
        assert.is_nil(back.secret)
        api.task(owner, p, { title = "after re-enabling" })
        local req = recv:wait(good_path, 1)[1]
        assert.is_table(req, "no delivery after re-enabling")
        assert.are.equal("after re-enabling", cjson.decode(req.body).data.task.title)
      end)

    it("a paused webhook (active=false) gets nothing until it is switched back on", function()
      local p = api.project(owner)
      local url, path = recv:url()
      local w = h.expect_status(create_webhook(owner, p, { url = url }), 201).data
      local paused = h.expect_status(api.call("PATCH", "/webhooks/" .. w.id, owner.access,
        { active = false }), 200).data
      assert.is_false(paused.active)
      assert.are.equal(h.null, paused.disabledAt)
      api.task(owner, p, { title = "paused" })
      h.expect_status(api.call("PATCH", "/webhooks/" .. w.id, owner.access, { active = true }), 200)
      api.task(owner, p, { title = "resumed" })
      local req = recv:wait(path, 1)[1]
      h.sleep(0.3)
      assert.are.equal(1, #recv:requests(path))
      assert.are.equal("resumed", cjson.decode(req.body).data.task.title)
    end)
  end)

  describe("a held-open receiver", function()
    local own, db_url, drop_db

    teardown(function()
      if own then
        own:stop()
      end
      if drop_db then
        drop_db()
      end
    end)

    it("holds no pool connection: with DB_POOL_SIZE=1 requests are served during the call",
      function()
        db_url, drop_db = E.own_database()
        own = E.server({
          DATABASE_URL = db_url, WORKERS = "2", DB_POOL_SIZE = "1",
          PLUGINS = "webhooks,activity",
          PLUGINS_CONFIG = (os.getenv("TASKAPI_ROOT") or ".") .. "/spec/integration/plugins.json",
        })
        local oapi = E.api(own.url)
        local boss = oapi.user("Holder")
        local p = oapi.project(boss)
        local hold = assert(socket.bind("127.0.0.1", 0))
        local _, port = hold:getsockname()
        hold:settimeout(15)
        h.expect_status(oapi.call("POST", "/projects/" .. p .. "/webhooks", boss.access,
          { url = ("http://127.0.0.1:%d/hold"):format(port) }), 201)
        oapi.task(boss, p, { title = "held" })
        local conn = assert(hold:accept(), "the webhook job never connected")
        -- the call is in flight (curl waits up to 10 s): the one pool
        -- connection must be free for requests that need the database
        for i = 1, 5 do
          oapi.task(boss, p, { title = "while held " .. i })
          local res = oapi.call("GET", "/projects/" .. p .. "/tasks", boss.access)
          h.expect_status(res, 200)
        end
        -- and the job row is settled (claimed, committed) while it runs
        assert.are.equal("pending|1", E.psql_at(db_url, "SELECT status || '|' || attempts FROM jobs "
          .. "WHERE kind = 'webhook' ORDER BY id LIMIT 1"))
        conn:close()
        hold:close()
      end)
  end)

  describe("durability", function()
    local own, db_url, drop_db

    teardown(function()
      if own then
        own:stop()
      end
      if drop_db then
        drop_db()
      end
    end)

    it("a delivery in flight when the server is SIGKILLed arrives after the restart", function()
      -- A database of our own, so this server's job runner is the only one.
      -- The claim leases the job for JOB_LEASE_MS: longer than the 6 s hang
      -- below, short enough for the spec to wait for.
      db_url, drop_db = E.own_database()
      own = E.server({
        DATABASE_URL = db_url, WORKERS = "2", JOB_LEASE_MS = "7000",
        PLUGINS = "webhooks,activity",
        PLUGINS_CONFIG = (os.getenv("TASKAPI_ROOT") or ".") .. "/spec/integration/plugins.json",
      })
      local oapi = E.api(own.url)
      local boss = oapi.user("Boss")
      local p = oapi.project(boss)
      -- attempt 1 fails at once; attempt 2 hangs 6 s: the kill comes while it hangs
      local url, path = recv:url({ codes = "500,200", delays = "0,6000,0" })
      local w = h.expect_status(oapi.call("POST", "/projects/" .. p .. "/webhooks", boss.access,
        { url = url }), 201).data
      oapi.task(boss, p, { title = "survives" })
      local arrived = E.wait_for(10, function()
        return #recv:arrivals(path) >= 2
      end)
      assert.is_true(arrived, "the second attempt never arrived")
      own:kill()

      -- The attempt in flight was claimed (counted, leased) before the call and
      -- never recorded: only the first is in the log, and the job is still
      -- pending, due again when its lease ends.
      assert.are.equal("1", E.psql_at(db_url, "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = "
        .. h.sql_literal(w.id)))
      assert.are.equal("pending|2|true", E.psql_at(db_url,
        "SELECT status || '|' || attempts || '|' || (run_at > now()) FROM jobs WHERE kind = 'webhook'"))

      own:start()
      local reqs = E.wait_for(15, function()
        local list = recv:requests(path)
        for _, r in ipairs(list) do
          if r.status == 200 and not r.aborted then
            return list
          end
        end
      end)
      assert.is_table(reqs, "the delivery did not arrive after the restart")
      local ok_req
      for _, r in ipairs(reqs) do
        if r.status == 200 and not r.aborted then
          ok_req = r
        end
      end
      assert.are.equal(reqs[1].headers["x-taskapi-delivery"], ok_req.headers["x-taskapi-delivery"])
      assert.are.equal(reqs[1].body, ok_req.body)
      assert.are.equal("survives", cjson.decode(ok_req.body).data.task.title)
      local status = E.wait_for(5, function()
        local s = E.psql_at(db_url, "SELECT status || '|' || attempts FROM jobs WHERE kind = 'webhook'")
        return s == "done|3" and s or nil
      end)
      assert.are.equal("done|3", status)
      assert.are.equal("1|500|false,3|200|true", E.psql_at(db_url, "SELECT string_agg(attempt || '|' || "
        .. "coalesce(status_code::text, '-') || '|' || success, ',' ORDER BY id) FROM webhook_deliveries"))
      local reports = own:stop()
      own = nil
      assert.are.equal("", reports)
    end)
  end)
end)
