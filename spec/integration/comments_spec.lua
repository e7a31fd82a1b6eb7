-- Comments (API.md §5): every route, status and error code, the Comment
-- shape, mention resolution (ids and @email, readers only), the
-- notifications a comment causes, and injection-shaped input.
local h = require "spec.integration.helper"
local cns = require "spec.integration.support.cns"
local cjson = require "cjson"

local COMMENT_KEYS = "author,content,createdAt,id,mentions,taskId,updatedAt,userId"
local AUTHOR_KEYS = "avatarUrl,id,name"
local LIST_KEYS = "data,meta"
local META_KEYS = "limit,nextCursor"

local function expect_comment(c)
  assert.is_table(c)
  assert.are.equal(COMMENT_KEYS, h.keys(c))
  assert.is_truthy(c.id:match(h.UUID))
  assert.is_truthy(c.taskId:match(h.UUID))
  assert.is_truthy(c.userId:match(h.UUID))
  assert.are.equal(AUTHOR_KEYS, h.keys(c.author))
  assert.are.equal(c.userId, c.author.id)
  assert.is_string(c.author.name)
  assert.is_truthy(c.author.avatarUrl == h.null or type(c.author.avatarUrl) == "string")
  assert.is_string(c.content)
  assert.is_table(c.mentions)
  for _, id in ipairs(c.mentions) do
    assert.is_truthy(id:match(h.UUID))
  end
  assert.is_truthy(c.createdAt:match(h.TIMESTAMP))
  assert.is_truthy(c.updatedAt:match(h.TIMESTAMP))
  return c
end

local function comments_path(task)
  return "/api/v1/tasks/" .. task.id .. "/comments"
end

local function post(who, task, body)
  return h.call("POST", comments_path(task), { token = who.access, body = body })
end

-- Posts a comment, asserting 201; returns the Comment.
local function comment(who, task, body)
  if type(body) == "string" then
    body = { content = body }
  end
  local res = post(who, task, body)
  return expect_comment(h.expect_status(res, 201).data)
end

local function sorted(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = v
  end
  table.sort(out)
  return table.concat(out, ",")
end

-- Comment notifications (mentioned, task_commented) stored for `who` about
-- `task`, as a sorted comma list of types.
local function notified(who, task)
  local types = {}
  for _, n in ipairs(cns.notifications(who.user.id, { "mentioned", "task_commented" })) do
    if n.data.taskId == task.id then
      types[#types + 1] = n.type
    end
  end
  table.sort(types)
  return table.concat(types, ",")
end

describe("comments", function()
  local owner, padmin, mem, mem2, viewer, outsider, gadmin
  local priv, pub, task, pubtask

  setup(function()
    owner = h.session({ name = "Owner" })
    padmin = h.session({ name = "Project Admin" })
    mem = h.session({ name = "Member" })
    mem2 = h.session({ name = "Member Two" })
    viewer = h.session({ name = "Viewer" })
    outsider = h.session({ name = "Outsider" })
    gadmin = cns.admin_session()
    priv = cns.project(owner, { visibility = "private" })
    cns.member(owner, priv, padmin, "admin")
    cns.member(owner, priv, mem, "member")
    cns.member(owner, priv, mem2, "member")
    cns.member(owner, priv, viewer, "viewer")
    pub = cns.project(owner, { visibility = "public" })
    cns.member(owner, pub, mem, "member")
    task = cns.task(owner, priv, { title = "Private task", assigneeId = mem2.user.id })
    pubtask = cns.task(owner, pub, { title = "Public task" })
  end)

  describe("POST /tasks/:id/comments", function()
    it("creates a comment: 201 with the exact Comment shape, content trimmed, mentions []", function()
      local res = post(mem, task, { content = "  Hello there  \n" })
      local c = expect_comment(h.expect_status(res, 201).data)
      assert.are.equal("data", h.keys(res.body))
      assert.are.equal("Hello there", c.content)
      assert.are.equal(task.id, c.taskId)
      assert.are.equal(mem.user.id, c.userId)
      assert.are.equal("Member", c.author.name)
      assert.are.equal(h.null, c.author.avatarUrl)
      assert.are.equal(0, #c.mentions)
      assert.is_truthy(res.raw:find('"mentions":[]', 1, true), res.raw)
      assert.are.equal(c.createdAt, c.updatedAt)
    end)

    it("lets the owner, a project admin and a global admin comment", function()
      comment(owner, task, "from the owner")
      comment(padmin, task, "from a project admin")
      comment(gadmin, task, "from a global admin")
    end)

    it("answers 401 without a token", function()
      h.expect_error(h.call("POST", comments_path(task), { body = { content = "x" } }), 401, "unauthorized")
    end)

    it("answers 404 for an unknown task, a malformed id, and a private project the caller cannot read", function()
      h.expect_error(post(mem, { id = "00000000-0000-4000-8000-000000000000" }, { content = "x" }),
        404, "not_found")
      h.expect_error(post(mem, { id = "not-a-uuid" }, { content = "x" }), 404, "not_found")
      h.expect_error(post(mem, { id = "1' OR '1'='1" }, { content = "x" }), 404, "not_found")
      h.expect_error(post(outsider, task, { content = "x" }), 404, "not_found")
    end)

    it("answers 403 to a viewer and to a non-member of a public project", function()
      h.expect_error(post(viewer, task, { content = "x" }), 403, "forbidden")
      h.expect_error(post(outsider, pubtask, { content = "x" }), 403, "forbidden")
    end)

    it("answers 409 on an archived project, where reading still works", function()
      local p = cns.project(owner)
      cns.member(owner, p, mem, "member")
      local t = cns.task(owner, p, { title = "Archived task" })
      local c = comment(mem, t, "before archiving")
      cns.set_status(p, "archived")
      h.expect_error(post(mem, t, { content = "after" }), 409, "conflict")
      h.expect_error(h.call("PATCH", "/api/v1/comments/" .. c.id, { token = mem.access,
        body = { content = "edited" } }), 409, "conflict")
      h.expect_error(h.call("DELETE", "/api/v1/comments/" .. c.id, { token = mem.access }), 409, "conflict")
      local body = h.expect_status(h.call("GET", comments_path(t), { token = mem.access }), 200)
      assert.are.equal(1, #body.data)
      assert.are.equal("before archiving", body.data[1].content)
    end)

    it("validates content: required, 1..10000 characters after trimming (422)", function()
      h.expect_validation(post(mem, task, {}), { "content" })
      h.expect_validation(post(mem, task, { content = "" }), { "content" })
      h.expect_validation(post(mem, task, { content = " \t\n " }), { "content" })
      h.expect_validation(post(mem, task, { content = string.rep("a", 10001) }), { "content" })
      h.expect_validation(post(mem, task, { content = 42 }), { "content" })
      h.expect_validation(post(mem, task, { content = "a\0b" }), { "content" })
      -- lengths count characters, not bytes
      local c = comment(mem, task, string.rep("é", 10000))
      assert.are.equal(utf8.len(c.content), 10000)
    end)

    it("rejects unknown fields (422), a non-JSON body (400) and a non-JSON content type (415)", function()
      h.expect_validation(post(mem, task, { content = "x", userId = owner.user.id }), { "userId" })
      h.expect_error(h.call("POST", comments_path(task), { token = mem.access, body = "{not json" }),
        400, "invalid_json")
      local res = h.call("POST", comments_path(task), { token = mem.access, body = "content=x",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
      h.expect_error(res, 415, "unsupported_media_type")
    end)

    it("validates mentions: an array of UUIDs (422 names the item)", function()
      h.expect_validation(post(mem, task, { content = "x", mentions = { "not-a-uuid" } }), { "mentions[0]" })
      h.expect_validation(post(mem, task, { content = "x", mentions = { mem2.user.id, "' OR 1=1 --" } }),
        { "mentions[1]" })
      h.expect_validation(post(mem, task, { content = "x", mentions = mem2.user.id }), { "mentions" })
      h.expect_validation(post(mem, task, { content = "x", mentions = { 7 } }), { "mentions[0]" })
    end)

    it("stores SQL-injection-shaped content exactly as sent", function()
      local evil = "'); DROP TABLE comments; -- $1 \\x00 %s \"quoted\" <b>bold</b>"
      local c = comment(mem, task, evil)
      assert.are.equal(evil, c.content)
      local body = h.expect_status(h.call("GET", comments_path(task) .. "?limit=100", { token = mem.access }), 200)
      assert.is_true(cns.set_of(body.data, "content")[evil] == true)
    end)
  end)

  describe("mentions", function()
    it("are the union of the ids sent and the members @mentioned by email (any case), without duplicates", function()
      local content = ("cc @%s and @%s, also @%s."):format(mem2.email:upper(), viewer.email, viewer.email)
      local c = comment(mem, task, { content = content, mentions = { padmin.user.id, mem2.user.id:upper() } })
      assert.are.equal(sorted({ padmin.user.id, mem2.user.id, viewer.user.id }), sorted(c.mentions))
    end)

    it("drop silently users who may not read a private project, and unknown ids", function()
      local c = comment(mem, task, {
        content = "hey @" .. outsider.email .. " and @nobody-" .. h.random_word(6) .. "@example.com",
        mentions = { outsider.user.id, "00000000-0000-4000-8000-000000000000" },
      })
      assert.are.equal(0, #c.mentions)
    end)

    it("keep a global admin on a private project (an admin may read everything)", function()
      local c = comment(mem, task, { content = "admin?", mentions = { gadmin.user.id } })
      assert.are.same({ gadmin.user.id }, c.mentions)
    end)

    it("keep a mentioned non-member on a public project; @email matches members only", function()
      local c = comment(mem, pubtask, { content = "see @" .. viewer.email, mentions = { outsider.user.id } })
      assert.are.same({ outsider.user.id }, c.mentions)
      local c2 = comment(mem, pubtask, { content = "see @" .. owner.email })
      assert.are.same({ owner.user.id }, c2.mentions)
    end)

    it("are stored: the list answers them too", function()
      local c = comment(mem, task, { content = "stored", mentions = { viewer.user.id } })
      local body = h.expect_status(h.call("GET", comments_path(task) .. "?limit=100", { token = viewer.access }), 200)
      for _, x in ipairs(body.data) do
        if x.id == c.id then
          assert.are.same({ viewer.user.id }, x.mentions)
        end
      end
    end)
  end)

  describe("notifications", function()
    it("go to mentioned users (mentioned) and the task's creator and assignee (task_commented), never the author",
      function()
        local t = cns.task(owner, priv, { title = "Notify me", assigneeId = mem2.user.id })
        local c = comment(mem, t, { content = "ping @" .. viewer.email, mentions = { mem.user.id } })
        assert.are.equal("mentioned", notified(viewer, t))
        assert.are.equal("task_commented", notified(owner, t))
        assert.are.equal("task_commented", notified(mem2, t))
        assert.are.equal("", notified(mem, t))
        assert.are.equal("", notified(padmin, t))
        local n = cns.notifications(viewer.user.id, { "mentioned" })
        local data = n[#n].data
        assert.are.equal("by,commentId,projectId,taskId,title", h.keys(data))
        assert.are.same({ by = mem.user.id, commentId = c.id, projectId = priv.id, taskId = t.id,
          title = "Notify me" }, data)
      end)

    it("tell a mentioned assignee once (mentioned), and nobody when the author is creator and assignee", function()
      local t = cns.task(owner, priv, { title = "Assigned", assigneeId = mem2.user.id })
      comment(mem, t, { content = "for you", mentions = { mem2.user.id } })
      assert.are.equal("mentioned", notified(mem2, t))
      local t2 = cns.task(owner, priv, { title = "Mine", assigneeId = owner.user.id })
      comment(owner, t2, { content = "talking to myself @" .. owner.email })
      assert.are.equal("", notified(owner, t2))
    end)

    it("go to a public project's mentioned non-member", function()
      local t = cns.task(owner, pub, { title = "Public notify" })
      comment(mem, t, { content = "hi", mentions = { outsider.user.id } })
      assert.are.equal("mentioned", notified(outsider, t))
    end)

    it("are not created for dropped mentions", function()
      local t = cns.task(owner, priv, { title = "Dropped" })
      comment(mem, t, { content = "hi @" .. outsider.email, mentions = { outsider.user.id } })
      assert.are.equal("", notified(outsider, t))
    end)

    it("on edit, go only to newly added mentions; removing an @email removes that mention", function()
      local t = cns.task(owner, priv, { title = "Edited" })
      local c = comment(mem, t, { content = "first", mentions = { viewer.user.id } })
      assert.are.equal("mentioned", notified(viewer, t))
      local res = h.call("PATCH", "/api/v1/comments/" .. c.id, { token = mem.access,
        body = { content = "second, cc @" .. padmin.email } })
      local e = expect_comment(h.expect_status(res, 200).data)
      assert.are.equal(sorted({ viewer.user.id, padmin.user.id }), sorted(e.mentions))
      assert.are.equal("mentioned", notified(viewer, t))
      assert.are.equal("mentioned", notified(padmin, t))
      res = h.call("PATCH", "/api/v1/comments/" .. c.id, { token = mem.access, body = { content = "third" } })
      e = expect_comment(h.expect_status(res, 200).data)
      assert.are.same({ viewer.user.id }, e.mentions)
      assert.are.equal("mentioned", notified(padmin, t))
      assert.are.equal("task_commented", notified(owner, t))
    end)
  end)

  describe("GET /tasks/:id/comments", function()
    local t, made

    setup(function()
      t = cns.task(owner, priv, { title = "Listed" })
      made = {}
      for i = 1, 5 do
        made[i] = comment(i % 2 == 0 and mem or mem2, t, "comment " .. i)
        h.sleep(0.003) -- distinct milliseconds, so "oldest first" is the order they were made
      end
    end)

    it("answers oldest first with {data, meta: {limit, nextCursor}}", function()
      local res = h.call("GET", comments_path(t), { token = mem.access })
      local body = h.expect_status(res, 200)
      assert.are.equal(LIST_KEYS, h.keys(body))
      assert.are.equal(META_KEYS, h.keys(body.meta))
      assert.are.equal(20, body.meta.limit)
      assert.are.equal(h.null, body.meta.nextCursor)
      assert.are.equal(5, #body.data)
      for i, c in ipairs(body.data) do
        expect_comment(c)
        assert.are.equal(made[i].id, c.id)
        assert.are.equal("comment " .. i, c.content)
      end
    end)

    it("pages with limit and cursor: every comment exactly once, in order", function()
      local seen, cursor, pages = {}, nil, 0
      repeat
        local path = comments_path(t) .. "?limit=2" .. (cursor and ("&cursor=" .. cursor) or "")
        local body = h.expect_status(h.call("GET", path, { token = viewer.access }), 200)
        assert.are.equal(2, body.meta.limit)
        assert.is_true(#body.data <= 2)
        for _, c in ipairs(body.data) do
          seen[#seen + 1] = c.id
        end
        pages = pages + 1
        cursor = body.meta.nextCursor ~= h.null and body.meta.nextCursor or nil
      until cursor == nil
      assert.are.equal(3, pages)
      local want = {}
      for i, c in ipairs(made) do
        want[i] = c.id
      end
      assert.are.same(want, seen)
    end)

    it("answers an empty list as [] for a task without comments", function()
      local empty = cns.task(owner, priv, { title = "Quiet" })
      local res = h.call("GET", comments_path(empty), { token = mem.access })
      h.expect_status(res, 200)
      assert.is_truthy(res.raw:find('"data":[]', 1, true), res.raw)
    end)

    it("is readable by every reader: viewer, global admin, anyone on a public project", function()
      h.expect_status(h.call("GET", comments_path(t), { token = viewer.access }), 200)
      h.expect_status(h.call("GET", comments_path(t), { token = gadmin.access }), 200)
      h.expect_status(h.call("GET", comments_path(pubtask), { token = outsider.access }), 200)
    end)

    it("answers 404 to an outsider of a private project, for unknown and malformed ids; 401 without token", function()
      h.expect_error(h.call("GET", comments_path(t), { token = outsider.access }), 404, "not_found")
      h.expect_error(h.call("GET", "/api/v1/tasks/00000000-0000-4000-8000-000000000000/comments",
        { token = mem.access }), 404, "not_found")
      h.expect_error(h.call("GET", "/api/v1/tasks/nope/comments", { token = mem.access }), 404, "not_found")
      h.expect_error(h.call("GET", comments_path(t)), 401, "unauthorized")
    end)

    it("answers 400 invalid_parameter for a bad limit, a bad or forged cursor, an unknown parameter", function()
      for _, qs in ipairs({ "limit=0", "limit=101", "limit=abc", "cursor=garbage", "cursor=", "foo=1" }) do
        h.expect_error(h.call("GET", comments_path(t) .. "?" .. qs, { token = mem.access }), 400,
          "invalid_parameter")
      end
      local forged = {
        { "2026-13-45T99:00:00.000Z", "00000000-0000-4000-8000-000000000000" },
        { "2026-01-01T00:00:00.000Z", "'; DROP TABLE comments; --" },
        { 1, 2 },
        { "2026-01-01T00:00:00.000Z" },
      }
      for _, v in ipairs(forged) do
        local c = h.b64url_encode(cjson.encode(v))
        h.expect_error(h.call("GET", comments_path(t) .. "?cursor=" .. c, { token = mem.access }), 400,
          "invalid_parameter")
      end
    end)
  end)

  describe("PATCH /comments/:id", function()
    local c

    before_each(function()
      c = comment(mem, task, "original")
      h.sleep(0.003)
    end)

    local function patch(who, id, body)
      return h.call("PATCH", "/api/v1/comments/" .. id, { token = who.access, body = body })
    end

    it("lets the author edit: 200 with the Comment, content trimmed, updatedAt moved", function()
      local res = patch(mem, c.id, { content = "  edited  " })
      local e = expect_comment(h.expect_status(res, 200).data)
      assert.are.equal(c.id, e.id)
      assert.are.equal("edited", e.content)
      assert.are.equal(c.createdAt, e.createdAt)
      assert.is_true(e.updatedAt > c.updatedAt)
      local body = h.expect_status(h.call("GET", comments_path(task) .. "?limit=100", { token = mem.access }), 200)
      for _, x in ipairs(body.data) do
        if x.id == c.id then
          assert.are.equal("edited", x.content)
        end
      end
    end)

    it("changes nothing for an empty body", function()
      local e = h.expect_status(patch(mem, c.id, {}), 200).data
      assert.are.same(c, e)
    end)

    it("answers 403 to anyone but the author: project owner, project admin, another member, a viewer",
      function()
        for _, who in ipairs({ owner, padmin, mem2, viewer }) do
          h.expect_error(patch(who, c.id, { content = "hijack" }), 403, "forbidden")
        end
      end)

    it("lets a global admin edit it (a global admin may do anything, API.md §3)", function()
      local e = h.expect_status(patch(gadmin, c.id, { content = "moderated" }), 200).data
      assert.are.equal("moderated", e.content)
      assert.are.equal(c.userId, e.userId)
    end)

    it("answers 404 to an outsider of a private project, for unknown and malformed ids", function()
      h.expect_error(patch(outsider, c.id, { content = "x" }), 404, "not_found")
      h.expect_error(patch(mem, "00000000-0000-4000-8000-000000000000", { content = "x" }), 404, "not_found")
      h.expect_error(patch(mem, "zzz", { content = "x" }), 404, "not_found")
    end)

    it("answers 422 for empty content and for fields it does not take", function()
      h.expect_validation(patch(mem, c.id, { content = "   " }), { "content" })
      h.expect_validation(patch(mem, c.id, { content = string.rep("x", 10001) }), { "content" })
      h.expect_validation(patch(mem, c.id, { content = "x", mentions = { viewer.user.id } }), { "mentions" })
      h.expect_validation(patch(mem, c.id, { content = h.null }), { "content" })
    end)

    it("answers 401 without a token", function()
      h.expect_error(h.call("PATCH", "/api/v1/comments/" .. c.id, { body = { content = "x" } }), 401, "unauthorized")
    end)
  end)

  describe("DELETE /comments/:id", function()
    local function delete(who, id)
      return h.call("DELETE", "/api/v1/comments/" .. id, { token = who.access })
    end

    local function listed(id)
      local body = h.expect_status(h.call("GET", comments_path(task) .. "?limit=100", { token = owner.access }), 200)
      return cns.set_of(body.data, "id")[id] == true
    end

    it("lets the author delete: 204, gone from the list, then 404", function()
      local c = comment(mem, task, "bye")
      assert.is_true(listed(c.id))
      local res = delete(mem, c.id)
      assert.are.equal(204, res.status)
      assert.are.equal("", res.raw)
      assert.is_false(listed(c.id))
      h.expect_error(delete(mem, c.id), 404, "not_found")
    end)

    it("lets a project admin, the owner and a global admin delete someone else's comment", function()
      for _, who in ipairs({ padmin, owner, gadmin }) do
        local c = comment(mem, task, "moderated")
        assert.are.equal(204, delete(who, c.id).status)
        assert.is_false(listed(c.id))
      end
    end)

    it("answers 403 to another member and a viewer, 404 to an outsider of a private project", function()
      local c = comment(mem, task, "keep me")
      h.expect_error(delete(mem2, c.id), 403, "forbidden")
      h.expect_error(delete(viewer, c.id), 403, "forbidden")
      h.expect_error(delete(outsider, c.id), 404, "not_found")
      assert.is_true(listed(c.id))
    end)

    it("answers 403 to a non-member of a public project", function()
      local c = comment(mem, pubtask, "public")
      h.expect_error(delete(outsider, c.id), 403, "forbidden")
    end)

    it("answers 404 for unknown and malformed ids, 401 without a token", function()
      h.expect_error(delete(mem, "00000000-0000-4000-8000-000000000000"), 404, "not_found")
      h.expect_error(delete(mem, "1;DROP"), 404, "not_found")
      h.expect_error(h.call("DELETE", "/api/v1/comments/00000000-0000-4000-8000-000000000000"), 401, "unauthorized")
    end)
  end)
end)
