-- Notifications (API.md §6): the caller's own list (newest first, unread
-- filter, keyset pages), marking one read, marking all read; someone else's
-- notification is not found. Notifications are seeded with psql so their
-- order is known, and also made for real by a comment.
local h = require "spec.integration.helper"
local cns = require "spec.integration.support.cns"
local cjson = require "cjson"

local NOTIFICATION_KEYS = "createdAt,data,id,readAt,type"
local TYPES = { task_assigned = true, mentioned = true, task_commented = true, task_status_changed = true }

local function expect_notification(n)
  assert.is_table(n)
  assert.are.equal(NOTIFICATION_KEYS, h.keys(n))
  assert.is_truthy(n.id:match(h.UUID))
  assert.is_true(TYPES[n.type] == true, tostring(n.type))
  assert.is_table(n.data)
  assert.is_truthy(n.readAt == h.null or n.readAt:match(h.TIMESTAMP))
  assert.is_truthy(n.createdAt:match(h.TIMESTAMP))
  return n
end

local function list(who, qs)
  return h.call("GET", "/api/v1/notifications" .. (qs and ("?" .. qs) or ""), { token = who.access })
end

local function read(who, id)
  return h.call("POST", "/api/v1/notifications/" .. id .. "/read", { token = who.access })
end

local function ids_of(body)
  local out = {}
  for i, n in ipairs(body.data) do
    out[i] = n.id
  end
  return out
end

-- Walks every page of a list; returns the ids in order and the page count.
local function walk(who, qs)
  local ids, cursor, pages = {}, nil, 0
  repeat
    local q = qs .. (cursor and ("&cursor=" .. cursor) or "")
    local body = h.expect_status(list(who, q), 200)
    for _, n in ipairs(body.data) do
      expect_notification(n)
      ids[#ids + 1] = n.id
    end
    pages = pages + 1
    cursor = body.meta.nextCursor ~= h.null and body.meta.nextCursor or nil
  until cursor == nil
  return ids, pages
end

describe("notifications", function()
  describe("GET /notifications", function()
    local me, other, seeded

    setup(function()
      me = h.session({ name = "Reader" })
      other = h.session({ name = "Other" })
      seeded = cns.seed_notifications(me.user.id, 5)
      cns.seed_notifications(other.user.id, 3)
    end)

    it("answers the caller's own notifications, newest first, with the exact shape", function()
      local res = list(me)
      local body = h.expect_status(res, 200)
      assert.are.equal("data,meta", h.keys(body))
      assert.are.equal("limit,nextCursor", h.keys(body.meta))
      assert.are.equal(20, body.meta.limit)
      assert.are.equal(h.null, body.meta.nextCursor)
      for _, n in ipairs(body.data) do
        expect_notification(n)
        assert.are.equal(h.null, n.readAt)
      end
      assert.are.same(seeded, ids_of(body))
      assert.are.equal(5, body.data[1].data.seq)
      assert.are.equal("task_assigned", body.data[1].type)
    end)

    it("pages with limit and cursor: every notification once, newest first", function()
      local ids, pages = walk(me, "limit=2")
      assert.are.equal(3, pages)
      assert.are.same(seeded, ids)
    end)

    it("answers [] for a user without notifications", function()
      local fresh = h.session()
      local res = list(fresh)
      h.expect_status(res, 200)
      assert.is_truthy(res.raw:find('"data":[]', 1, true), res.raw)
    end)

    it("answers 400 invalid_parameter for bad unread, limit, cursor or unknown parameters", function()
      for _, qs in ipairs({ "unread=maybe", "unread=", "limit=0", "limit=101", "limit=x", "cursor=@@@",
          "cursor=abc", "page=2" }) do
        h.expect_error(list(me, qs), 400, "invalid_parameter")
      end
      for _, v in ipairs({ { "2026-02-30T00:00:00.000Z", seeded[1] }, { "yesterday", seeded[1] },
          { "2026-01-01T00:00:00.000Z", "1 OR 1=1" }, { seeded[1] } }) do
        h.expect_error(list(me, "cursor=" .. h.b64url_encode(cjson.encode(v))), 400, "invalid_parameter")
      end
    end)

    it("answers 401 without a token", function()
      h.expect_error(h.call("GET", "/api/v1/notifications"), 401, "unauthorized")
    end)
  end)

  describe("reading", function()
    local me, other, mine, theirs

    setup(function()
      me = h.session({ name = "Reader" })
      other = h.session({ name = "Other" })
    end)

    before_each(function()
      h.psql(("DELETE FROM notifications WHERE user_id IN (%s, %s)"):format(h.sql_literal(me.user.id),
        h.sql_literal(other.user.id)))
      mine = cns.seed_notifications(me.user.id, 4)
      theirs = cns.seed_notifications(other.user.id, 2)
    end)

    it("POST /notifications/:id/read answers 200 {data: Notification} with readAt set, and keeps it", function()
      local res = read(me, mine[2])
      local body = h.expect_status(res, 200)
      assert.are.equal("data", h.keys(body))
      local n = expect_notification(body.data)
      assert.are.equal(mine[2], n.id)
      assert.is_truthy(n.readAt:match(h.TIMESTAMP))
      h.sleep(0.01)
      local again = h.expect_status(read(me, mine[2]), 200).data
      assert.are.equal(n.readAt, again.readAt)
      local listed = h.expect_status(list(me), 200).data
      assert.are.equal(n.readAt, listed[2].readAt)
      assert.are.equal(h.null, listed[1].readAt)
    end)

    it("unread=true leaves read ones out; unread=false and no filter list all", function()
      h.expect_status(read(me, mine[1]), 200)
      h.expect_status(read(me, mine[3]), 200)
      assert.are.same({ mine[2], mine[4] }, ids_of(h.expect_status(list(me, "unread=true"), 200)))
      assert.are.same(mine, ids_of(h.expect_status(list(me, "unread=false"), 200)))
      assert.are.same(mine, ids_of(h.expect_status(list(me), 200)))
      local ids = walk(me, "unread=true&limit=1")
      assert.are.same({ mine[2], mine[4] }, ids)
    end)

    it("someone else's notification is 404, and stays unread", function()
      h.expect_error(read(me, theirs[1]), 404, "not_found")
      assert.are.equal(h.null, h.expect_status(list(other), 200).data[2].readAt)
    end)

    it("an unknown or malformed id is 404", function()
      h.expect_error(read(me, "00000000-0000-4000-8000-000000000000"), 404, "not_found")
      h.expect_error(read(me, "not-a-uuid"), 404, "not_found")
      h.expect_error(read(me, "1%27%20OR%20%271%27%3D%271"), 404, "not_found")
    end)

    it("POST /notifications/read-all answers 204 and reads only the caller's", function()
      h.expect_status(read(me, mine[1]), 200)
      local before = h.expect_status(list(me), 200).data[1].readAt
      local res = h.call("POST", "/api/v1/notifications/read-all", { token = me.access })
      assert.are.equal(204, res.status)
      assert.are.equal("", res.raw)
      local unread = h.expect_status(list(me, "unread=true"), 200)
      assert.are.equal(0, #unread.data)
      for _, n in ipairs(h.expect_status(list(me), 200).data) do
        assert.is_truthy(n.readAt ~= h.null)
      end
      -- an already read one keeps its first readAt
      assert.are.equal(before, h.expect_status(list(me), 200).data[1].readAt)
      assert.are.equal(2, #h.expect_status(list(other, "unread=true"), 200).data)
      -- nothing left to read is fine too
      assert.are.equal(204, h.call("POST", "/api/v1/notifications/read-all", { token = me.access }).status)
    end)

    it("answers 401 without a token", function()
      h.expect_error(h.call("POST", "/api/v1/notifications/" .. mine[1] .. "/read"), 401, "unauthorized")
      h.expect_error(h.call("POST", "/api/v1/notifications/read-all"), 401, "unauthorized")
    end)
  end)

  describe("made by a comment", function()
    it("reach the mentioned user's list with the task and comment in data", function()
      local owner = h.session({ name = "Owner" })
      local mentioned = h.session({ name = "Mentioned" })
      local p = cns.project(owner)
      cns.member(owner, p, mentioned, "viewer")
      local t = cns.task(owner, p, { title = "Ship it" })
      local res = h.call("POST", "/api/v1/tasks/" .. t.id .. "/comments", { token = owner.access,
        body = { content = "please look @" .. mentioned.email } })
      local c = h.expect_status(res, 201).data
      local body = h.expect_status(list(mentioned, "unread=true"), 200)
      assert.are.equal(1, #body.data)
      local n = expect_notification(body.data[1])
      assert.are.equal("mentioned", n.type)
      assert.are.same({ taskId = t.id, projectId = p.id, title = "Ship it", by = owner.user.id,
        commentId = c.id }, n.data)
      local r = h.expect_status(read(mentioned, n.id), 200).data
      assert.are.equal(n.id, r.id)
      assert.are.equal(0, #h.expect_status(list(mentioned, "unread=true"), 200).data)
      -- the author hears nothing about their own comment
      assert.are.equal(0, #h.expect_status(list(owner, "unread=true"), 200).data)
    end)
  end)
end)
