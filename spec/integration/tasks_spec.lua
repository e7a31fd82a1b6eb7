-- Integration specs for tasks (API.md §4) against a live server: create
-- through both routes, read with ETag, PATCH (named fields only, null
-- clearing, completedAt rules, If-Match, the `changes` list), DELETE, the
-- list filters, permissions (404 / 403 / 409), every validation rule, the
-- notifications stored for §6, the list's query budget, and SQL-shaped
-- strings through every text field and filter.
local h = require "spec.integration.helper"
local T = require "spec.integration.support.tasks"

local null = h.null
local call, query = T.call, T.query

local ZERO_UUID = "00000000-0000-4000-8000-000000000000"

local function get_task(token, id)
  return call("GET", "/tasks/" .. id, token)
end

local function patch(token, id, body, headers)
  return call("PATCH", "/tasks/" .. id, token, body, headers)
end

local function list(token, params)
  return call("GET", "/tasks" .. query(params or {}), token)
end

local function list_ids(token, params)
  local b = h.expect_status(list(token, params), 200)
  local ids = {}
  for i, t in ipairs(b.data) do
    ids[i] = t.id
  end
  return ids, b
end

local function set_of(list_)
  local s = {}
  for _, v in ipairs(list_) do
    s[v] = true
  end
  return s
end

describe("tasks", function()
  local owner, member, viewer, admin, outsider, project

  setup(function()
    owner, member, viewer = T.user("Owner"), T.user("Member"), T.user("Viewer")
    admin, outsider = T.user("Admin"), T.user("Outsider")
    project = T.project(owner, { members = { { member, "member" }, { viewer, "viewer" },
      { admin, "admin" } } })
  end)

  -- ---- create -------------------------------------------------------------------

  describe("POST /projects/:id/tasks and POST /tasks", function()
    it("creates a task with the defaults and answers 201 with the Task, ETag and Location", function()
      local res = T.create_res(member.access, project, { title = "  Write the spec  " })
      local t = T.expect_task(h.expect_status(res, 201).data)
      assert.are.equal("data", h.keys(res.body))
      assert.are.equal("Write the spec", t.title)
      assert.are.equal("", t.description)
      assert.are.equal("todo", t.status)
      assert.are.equal("medium", t.priority)
      assert.are.equal(null, t.assigneeId)
      assert.are.equal(null, t.dueDate)
      assert.are.equal(null, t.completedAt)
      assert.are.same({}, t.tags)
      assert.is_truthy(res.raw:find('"tags":[]', 1, true), "tags must encode as []: " .. res.raw)
      assert.are.equal(1, t.version)
      assert.are.equal(project, t.projectId)
      assert.are.equal(member.id, t.createdBy)
      assert.are.equal(t.createdAt, t.updatedAt)
      assert.are.equal('"1"', res.headers["etag"])
      assert.are.equal("/api/v1/tasks/" .. t.id, res.headers["location"])
    end)

    it("POST /tasks takes projectId in the body and stores every field", function()
      local res = call("POST", "/tasks", member.access, {
        projectId = project, title = "Full", description = "  kept as is  ", status = "in_review",
        priority = "urgent", assigneeId = owner.id, dueDate = "2026-01-15", tags = { "a", "b c" },
      })
      local t = T.expect_task(h.expect_status(res, 201).data)
      assert.are.equal(project, t.projectId)
      assert.are.equal("  kept as is  ", t.description)
      assert.are.equal("in_review", t.status)
      assert.are.equal("urgent", t.priority)
      assert.are.equal(owner.id, t.assigneeId)
      assert.are.equal("2026-01-15T00:00:00.000Z", t.dueDate)
      assert.are.same({ "a", "b c" }, t.tags)
      -- and it reads back the same
      local again = h.expect_status(get_task(member.access, t.id), 200).data
      assert.are.same(t, again)
    end)

    it("accepts dueDate as a date-time with an offset and returns it in UTC with milliseconds", function()
      local t = T.create(member.access, project, { title = "dt", dueDate = "2026-03-01T01:30:00+02:00" })
      assert.are.equal("2026-02-28T23:30:00.000Z", t.dueDate)
      t = T.create(member.access, project, { title = "dt2", dueDate = "2026-03-01T10:00:00.1234Z" })
      assert.are.equal("2026-03-01T10:00:00.123Z", t.dueDate)
    end)

    it("sets completedAt at once for a task created as done", function()
      local t = T.create(member.access, project, { title = "born done", status = "done" })
      assert.is_truthy(tostring(t.completedAt):match(h.TIMESTAMP))
    end)

    it("accepts a title of 500 emoji (lengths count code points) and refuses 501", function()
      local t = T.create(member.access, project, { title = string.rep("😀", 500) })
      assert.are.equal(500, utf8.len(t.title))
      h.expect_validation(T.create_res(member.access, project, { title = string.rep("😀", 501) }),
        { "title" })
    end)

    it("accepts a 50000-character description and 20 tags of 50 characters", function()
      local tags = {}
      for i = 1, 20 do
        tags[i] = string.format("%02d", i) .. string.rep("é", 48)
      end
      local t = T.create(member.access, project, { title = "big", description = string.rep("ü", 50000),
        tags = tags })
      assert.are.equal(50000, utf8.len(t.description))
      assert.are.same(tags, t.tags)
      for i = 1, 20 do
        tags[i] = string.format("%02d", i) .. string.rep("\"", 48) -- quotes need escaping in arrays
      end
      t = T.create(member.access, project, { title = "quotes", tags = tags })
      assert.are.same(tags, t.tags)
      local u = h.expect_status(patch(member.access, t.id, { tags = { tags[20], tags[1] } }), 200).data
      assert.are.same({ tags[20], tags[1] }, u.tags)
    end)

    local invalid = {
      { "a missing title", { description = "x" }, "title" },
      { "an empty title", { title = "" }, "title" },
      { "a blank title (trimmed)", { title = " \t\u{3000} " }, "title" },
      { "a title that is not a string", { title = 42 }, "title" },
      { "a null title", { title = null }, "title" },
      { "a title with U+0000", { title = "a\0b" }, "title" },
      { "a description with U+0000", { title = "x", description = "a\0b" }, "description" },
      { "a description over 50000", { title = "x", description = string.rep("a", 50001) }, "description" },
      { "an unknown status", { title = "x", status = "doing" }, "status" },
      { "an unknown priority", { title = "x", priority = "critical" }, "priority" },
      { "21 tags", { title = "x", tags = { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
        "13", "14", "15", "16", "17", "18", "19", "20", "21" } }, "tags" },
      { "duplicate tags", { title = "x", tags = { "a", "b", "a" } }, "tags" },
      { "tags equal after trimming", { title = "x", tags = { "a", " a " } }, "tags" },
      { "an empty tag", { title = "x", tags = { "" } }, "tags[0]" },
      { "a tag of 51 characters", { title = "x", tags = { string.rep("t", 51) } }, "tags[0]" },
      { "a tag that is not a string", { title = "x", tags = { 1 } }, "tags[0]" },
      { "a tag with U+0000", { title = "x", tags = { "a\0" } }, "tags[0]" },
      { "tags that are not a list", { title = "x", tags = "a,b" }, "tags" },
      { "an assigneeId that is not a UUID", { title = "x", assigneeId = "bob" }, "assigneeId" },
      { "a dueDate that is no date", { title = "x", dueDate = "tomorrow" }, "dueDate" },
      { "a dueDate that does not exist", { title = "x", dueDate = "2026-02-30" }, "dueDate" },
      { "an unknown field", { title = "x", colour = "red" }, "colour" },
      { "projectId on the project route", { title = "x", projectId = ZERO_UUID }, "projectId" },
    }
    for _, case in ipairs(invalid) do
      it("answers 422 for " .. case[1], function()
        h.expect_validation(T.create_res(member.access, project, case[2]), { case[3] })
      end)
    end

    it("answers 422 on assigneeId for a user who is not a member", function()
      local e = h.expect_validation(T.create_res(member.access, project,
        { title = "x", assigneeId = outsider.id }), { "assigneeId" })
      assert.is_string(e.message)
      h.expect_validation(T.create_res(member.access, project, { title = "x", assigneeId = ZERO_UUID }),
        { "assigneeId" })
    end)

    it("answers 422 on assigneeId for a non-member even on a public project", function()
      local pub = T.project(owner, { visibility = "public" })
      h.expect_validation(T.create_res(owner.access, pub, { title = "x", assigneeId = outsider.id }),
        { "assigneeId" })
    end)

    it("lets a viewer be assigned (any member may be)", function()
      local t = T.create(member.access, project, { title = "x", assigneeId = viewer.id })
      assert.are.equal(viewer.id, t.assigneeId)
    end)

    it("POST /tasks needs projectId (422) and a UUID in it (422)", function()
      h.expect_validation(call("POST", "/tasks", member.access, { title = "x" }), { "projectId" })
      h.expect_validation(call("POST", "/tasks", member.access, { title = "x", projectId = "nope" }),
        { "projectId" })
    end)

    it("answers 404 for a project that does not exist or that the caller may not read", function()
      h.expect_error(call("POST", "/tasks", member.access, { projectId = ZERO_UUID, title = "x" }),
        404, "not_found")
      h.expect_error(call("POST", "/tasks", outsider.access, { projectId = project, title = "x" }),
        404, "not_found")
      h.expect_error(T.create_res(outsider.access, project, { title = "x" }), 404, "not_found")
      h.expect_error(T.create_res(member.access, "not-a-uuid", { title = "x" }), 404, "not_found")
      h.expect_error(T.create_res(member.access, ZERO_UUID, { title = "x" }), 404, "not_found")
    end)

    it("answers 403 to a viewer, and to a non-member of a public project", function()
      h.expect_error(T.create_res(viewer.access, project, { title = "x" }), 403, "forbidden")
      local pub = T.project(owner, { visibility = "public" })
      h.expect_error(T.create_res(outsider.access, pub, { title = "x" }), 403, "forbidden")
    end)

    it("lets members, admins and the owner create", function()
      for _, u in ipairs({ member, admin, owner }) do
        T.create(u.access, project, { title = "by " .. u.email })
      end
    end)

    it("answers 409 conflict under an archived project", function()
      local p = T.project(owner, { members = { { member, "member" } } })
      T.set_project_status(p, "archived")
      h.expect_error(T.create_res(member.access, p, { title = "x" }), 409, "conflict")
      h.expect_error(call("POST", "/tasks", owner.access, { projectId = p, title = "x" }), 409, "conflict")
    end)

    it("answers 401 without a token", function()
      h.expect_error(T.create_res(nil, project, { title = "x" }), 401, "unauthorized")
    end)
  end)

  -- ---- read -----------------------------------------------------------------------

  describe("GET /tasks/:id", function()
    local task

    setup(function()
      task = T.create(member.access, project, { title = "readable" })
    end)

    it("answers 200 with the Task and ETag \"<version>\"", function()
      local res = get_task(viewer.access, task.id)
      local t = T.expect_task(h.expect_status(res, 200).data)
      assert.are.same(task, t)
      assert.are.equal('"' .. math.tointeger(t.version) .. '"', res.headers["etag"])
    end)

    it("answers 304 to If-None-Match with the current version", function()
      local res = call("GET", "/tasks/" .. task.id, viewer.access, nil, { ["If-None-Match"] = '"1"' })
      assert.are.equal(304, res.status)
      assert.are.equal('"1"', res.headers["etag"])
      res = call("GET", "/tasks/" .. task.id, viewer.access, nil, { ["If-None-Match"] = '"7"' })
      assert.are.equal(200, res.status)
    end)

    it("answers 404 for a malformed id, a missing task and a private project's task", function()
      h.expect_error(get_task(owner.access, "not-a-uuid"), 404, "not_found")
      h.expect_error(get_task(owner.access, "' OR 1=1 --"), 404, "not_found")
      h.expect_error(get_task(owner.access, ZERO_UUID), 404, "not_found")
      h.expect_error(get_task(outsider.access, task.id), 404, "not_found")
    end)

    it("lets anyone authenticated read a task of a public project", function()
      local pub = T.project(owner, { visibility = "public" })
      local t = T.create(owner.access, pub, { title = "public" })
      assert.are.same(t, h.expect_status(get_task(outsider.access, t.id), 200).data)
    end)

    it("lets a global admin read any task", function()
      local ga = T.user("Global Admin")
      h.psql(("UPDATE users SET role = 'admin' WHERE id = %s"):format(h.sql_literal(ga.id)))
      local d = h.login(ga.email, ga.password)
      h.expect_status(get_task(d.accessToken, task.id), 200)
    end)
  end)

  -- ---- update ---------------------------------------------------------------------

  describe("PATCH /tasks/:id", function()
    it("changes only the named fields and bumps the version by one", function()
      local t = T.create(member.access, project, { title = "before", description = "d", priority = "high",
        tags = { "x" }, dueDate = "2026-05-01", assigneeId = member.id })
      local res = patch(member.access, t.id, { title = "after" })
      local u = T.expect_task(h.expect_status(res, 200).data)
      assert.are.equal("after", u.title)
      assert.are.equal(2, u.version)
      assert.are.equal('"2"', res.headers["etag"])
      for _, k in ipairs({ "description", "priority", "tags", "dueDate", "assigneeId", "status",
        "createdAt", "createdBy", "projectId", "completedAt" }) do
        assert.are.same(t[k], u[k], k)
      end
      assert.is_true(u.updatedAt >= t.updatedAt)
      u = h.expect_status(patch(member.access, t.id, { priority = "low", tags = {} }), 200).data
      assert.are.equal(3, u.version)
      assert.are.same({}, u.tags)
      assert.are.equal("after", u.title)
    end)

    it("clears assigneeId and dueDate with null", function()
      local t = T.create(member.access, project, { title = "c", dueDate = "2026-05-01", assigneeId = owner.id })
      local u = h.expect_status(patch(member.access, t.id, { assigneeId = null, dueDate = null }), 200).data
      assert.are.equal(null, u.assigneeId)
      assert.are.equal(null, u.dueDate)
      assert.are.equal(2, u.version)
    end)

    it("refuses null for fields that cannot be empty, projectId and unknown fields (422)", function()
      local t = T.create(member.access, project, { title = "n" })
      for _, f in ipairs({ "title", "description", "status", "priority", "tags" }) do
        h.expect_validation(patch(member.access, t.id, { [f] = null }), { f })
      end
      h.expect_validation(patch(member.access, t.id, { projectId = project }), { "projectId" })
      h.expect_validation(patch(member.access, t.id, { version = 9 }), { "version" })
      h.expect_validation(patch(member.access, t.id, { title = string.rep("a", 501) }), { "title" })
      h.expect_validation(patch(member.access, t.id, { title = "a\0" }), { "title" })
      h.expect_validation(patch(member.access, t.id, { tags = { "q", "q" } }), { "tags" })
      h.expect_validation(patch(member.access, t.id, { dueDate = "2026-13-01" }), { "dueDate" })
      h.expect_validation(patch(member.access, t.id, { assigneeId = outsider.id }), { "assigneeId" })
      assert.are.equal(1, h.expect_status(get_task(member.access, t.id), 200).data.version)
    end)

    it("sets completedAt when moving to done, keeps it while done, clears it when moving away", function()
      local t = T.create(member.access, project, { title = "flow" })
      local u = h.expect_status(patch(member.access, t.id, { status = "in_progress" }), 200).data
      assert.are.equal(null, u.completedAt)
      u = h.expect_status(patch(member.access, t.id, { status = "done" }), 200).data
      local done_at = u.completedAt
      assert.is_truthy(tostring(done_at):match(h.TIMESTAMP))
      h.sleep(0.01)
      u = h.expect_status(patch(member.access, t.id, { title = "flow 2" }), 200).data
      assert.are.equal(done_at, u.completedAt)
      u = h.expect_status(patch(member.access, t.id, { status = "cancelled" }), 200).data
      assert.are.equal(null, u.completedAt)
      assert.are.equal(5, u.version)
    end)

    it("keeps the version when nothing actually changes", function()
      local t = T.create(member.access, project, { title = "same", tags = { "a" }, dueDate = "2026-01-15" })
      local res = patch(member.access, t.id, { title = "same", tags = { "a" },
        dueDate = "2026-01-15T00:00:00Z" })
      local u = h.expect_status(res, 200).data
      assert.are.same(t, u)
      assert.are.equal('"1"', res.headers["etag"])
      u = h.expect_status(patch(member.access, t.id, {}), 200).data
      assert.are.equal(1, u.version)
    end)

    it("honours If-Match: quoted, bare and weak tags match; a stale one is 412", function()
      local t = T.create(member.access, project, { title = "im" })
      h.expect_status(patch(member.access, t.id, { title = "v2" }, { ["If-Match"] = '"1"' }), 200)
      h.expect_status(patch(member.access, t.id, { title = "v3" }, { ["If-Match"] = "2" }), 200)
      h.expect_status(patch(member.access, t.id, { title = "v4" }, { ["If-Match"] = 'W/"3"' }), 200)
      h.expect_status(patch(member.access, t.id, { title = "v5" }, { ["If-Match"] = '"1", "4"' }), 200)
      h.expect_status(patch(member.access, t.id, { title = "v6" }, { ["If-Match"] = "*" }), 200)
      local stale = patch(member.access, t.id, { title = "stale" }, { ["If-Match"] = '"1"' })
      h.expect_error(stale, 412, "precondition_failed")
      assert.are.equal('"6"', stale.headers["etag"]) -- the version that is current now
      h.expect_error(patch(member.access, t.id, { title = "junk" }, { ["If-Match"] = '"abc"' }),
        412, "precondition_failed")
      local now = h.expect_status(get_task(member.access, t.id), 200).data
      assert.are.equal("v6", now.title)
      assert.are.equal(6, now.version)
    end)

    it("answers 404 / 403 / 409 like the other writes", function()
      local t = T.create(member.access, project, { title = "perm" })
      h.expect_error(patch(member.access, "nope", { title = "x" }), 404, "not_found")
      h.expect_error(patch(member.access, ZERO_UUID, { title = "x" }), 404, "not_found")
      h.expect_error(patch(outsider.access, t.id, { title = "x" }), 404, "not_found")
      h.expect_error(patch(viewer.access, t.id, { title = "x" }), 403, "forbidden")
      h.expect_status(patch(admin.access, t.id, { title = "by admin" }), 200)
      h.expect_status(patch(owner.access, t.id, { title = "by owner" }), 200)
      local p = T.project(owner, { members = { { member, "member" } } })
      local a = T.create(member.access, p, { title = "soon archived" })
      T.set_project_status(p, "archived")
      h.expect_error(patch(member.access, a.id, { title = "x" }), 409, "conflict")
      h.expect_status(get_task(member.access, a.id), 200)
    end)

    it("reports the fields that actually changed (the task:updated `changes` list)", function()
      -- The list is computed by lib.tasks.changes from the Task before and
      -- after; prove it on real answers of the server.
      -- lib.tasks needs tk.db only to load; a stub stands in for it here.
      local saved = package.preload["tk.db"]
      package.preload["tk.db"] = saved or function()
        return {}
      end
      local tasks = require "lib.tasks"
      package.preload["tk.db"] = saved
      local t = T.create(member.access, project, { title = "ch", tags = { "a" } })
      local u = h.expect_status(patch(member.access, t.id, { title = "ch", status = "done",
        tags = { "a", "b" }, priority = "medium", assigneeId = owner.id }), 200).data
      assert.are.same({ "status", "assigneeId", "completedAt", "tags" }, tasks.changes(t, u))
      local v = h.expect_status(patch(member.access, t.id, { dueDate = "2027-01-01" }), 200).data
      assert.are.same({ "dueDate" }, tasks.changes(u, v))
      assert.are.same({}, tasks.changes(v, v))
    end)
  end)

  -- ---- delete ---------------------------------------------------------------------

  describe("DELETE /tasks/:id", function()
    it("lets the creator (a member) delete; then the task is gone", function()
      local t = T.create(member.access, project, { title = "del" })
      local res = call("DELETE", "/tasks/" .. t.id, member.access)
      assert.are.equal(204, res.status, res.raw)
      assert.are.equal("", res.raw)
      h.expect_error(get_task(member.access, t.id), 404, "not_found")
      h.expect_error(call("DELETE", "/tasks/" .. t.id, member.access), 404, "not_found")
    end)

    it("refuses another member (403) and a viewer (403); admin and owner may", function()
      local other = T.user("Other member")
      T.add_member(project, other, "member")
      local t1 = T.create(member.access, project, { title = "d1" })
      h.expect_error(call("DELETE", "/tasks/" .. t1.id, other.access), 403, "forbidden")
      h.expect_error(call("DELETE", "/tasks/" .. t1.id, viewer.access), 403, "forbidden")
      assert.are.equal(204, call("DELETE", "/tasks/" .. t1.id, admin.access).status)
      local t2 = T.create(member.access, project, { title = "d2" })
      assert.are.equal(204, call("DELETE", "/tasks/" .. t2.id, owner.access).status)
    end)

    it("refuses a creator who is no longer member+ (403) or no longer in the project (404)", function()
      local p = T.project(owner)
      local c = T.user("Creator")
      T.add_member(p, c, "member")
      local t = T.create(c.access, p, { title = "mine" })
      T.add_member(p, c, "viewer")
      h.expect_error(call("DELETE", "/tasks/" .. t.id, c.access), 403, "forbidden")
      T.remove_member(p, c)
      h.expect_error(call("DELETE", "/tasks/" .. t.id, c.access), 404, "not_found")
    end)

    it("honours If-Match (412 on a stale version)", function()
      local t = T.create(member.access, project, { title = "dm" })
      h.expect_status(patch(member.access, t.id, { title = "dm2" }), 200)
      local stale = call("DELETE", "/tasks/" .. t.id, member.access, nil, { ["If-Match"] = '"1"' })
      h.expect_error(stale, 412, "precondition_failed")
      assert.are.equal('"2"', stale.headers["etag"])
      h.expect_status(get_task(member.access, t.id), 200)
      assert.are.equal(204, call("DELETE", "/tasks/" .. t.id, member.access, nil,
        { ["If-Match"] = 'W/"2"' }).status)
    end)

    it("answers 404 for bad ids and 409 under an archived project", function()
      h.expect_error(call("DELETE", "/tasks/xyz", owner.access), 404, "not_found")
      h.expect_error(call("DELETE", "/tasks/" .. ZERO_UUID, owner.access), 404, "not_found")
      local p = T.project(owner)
      local t = T.create(owner.access, p, { title = "arch" })
      T.set_project_status(p, "archived")
      h.expect_error(call("DELETE", "/tasks/" .. t.id, owner.access), 409, "conflict")
      h.expect_error(call("DELETE", "/tasks/" .. t.id, outsider.access), 404, "not_found")
    end)
  end)

  -- ---- list -----------------------------------------------------------------------

  describe("GET /tasks", function()
    local p, a, b, c, d, e, u1, u2

    setup(function()
      u1, u2 = T.user("Lister 1"), T.user("Lister 2")
      p = T.project(u1, { members = { { u2, "member" } } })
      a = T.create(u1.access, p, { title = "Deploy the database migration", status = "todo",
        priority = "high", assigneeId = u1.id, tags = { "backend", "ops" }, dueDate = "2026-01-10" })
      b = T.create(u2.access, p, { title = "Write release notes", description = "mention the migration",
        status = "in_progress", priority = "low", assigneeId = u2.id, tags = { "docs" },
        dueDate = "2026-02-10" })
      c = T.create(u1.access, p, { title = "Fix login bug", status = "done", priority = "urgent",
        tags = { "backend" } })
      d = T.create(u2.access, p, { title = "Plan the offsite", status = "cancelled", priority = "medium",
        dueDate = "2026-03-10T12:00:00Z" })
      e = T.create(u1.access, p, { title = "Review the budget", status = "in_review", priority = "medium",
        assigneeId = u2.id, dueDate = "2026-01-20" })
    end)

    local function ids_of(params)
      params.projectId = p
      return set_of((list_ids(u1.access, params)))
    end

    it("lists a project's tasks newest first with the list shape", function()
      local ids, body = list_ids(u1.access, { projectId = p })
      assert.are.equal("data,meta", h.keys(body))
      assert.are.equal("limit,nextCursor", h.keys(body.meta))
      assert.are.equal(20, body.meta.limit)
      assert.are.equal(null, body.meta.nextCursor)
      assert.are.same({ e.id, d.id, c.id, b.id, a.id }, ids)
      for _, t in ipairs(body.data) do
        T.expect_task(t)
      end
      local same = list_ids(u1.access, { projectId = p, sort = "-createdAt" })
      assert.are.same(ids, same)
      -- the project route gives the same
      local res = call("GET", "/projects/" .. p .. "/tasks", u2.access)
      local ids2 = {}
      for i, t in ipairs(h.expect_status(res, 200).data) do
        ids2[i] = t.id
      end
      assert.are.same(ids, ids2)
    end)

    it("filters by status and priority (comma lists)", function()
      assert.are.same(set_of({ a.id, b.id }), ids_of({ status = "todo,in_progress" }))
      assert.are.same(set_of({ c.id }), ids_of({ status = "done" }))
      assert.are.same(set_of({ c.id, a.id }), ids_of({ priority = "urgent,high" }))
      assert.are.same(set_of({ d.id }), ids_of({ priority = "medium", status = "cancelled" }))
    end)

    it("filters by assigneeId: a user id, me and none", function()
      assert.are.same(set_of({ b.id, e.id }), ids_of({ assigneeId = u2.id }))
      assert.are.same(set_of({ a.id }), ids_of({ assigneeId = "me" }))
      assert.are.same(set_of({ c.id, d.id }), ids_of({ assigneeId = "none" }))
      assert.are.same({}, ids_of({ assigneeId = ZERO_UUID }))
    end)

    it("filters by createdBy and tag", function()
      assert.are.same(set_of({ b.id, d.id }), ids_of({ createdBy = u2.id }))
      assert.are.same(set_of({ a.id, c.id }), ids_of({ tag = "backend" }))
      assert.are.same(set_of({ b.id }), ids_of({ tag = "docs" }))
      assert.are.same({}, ids_of({ tag = "back" }))
    end)

    it("filters by dueBefore (exclusive) and dueAfter (inclusive), dates or date-times", function()
      assert.are.same(set_of({ a.id }), ids_of({ dueBefore = "2026-01-20" }))
      assert.are.same(set_of({ a.id, e.id }), ids_of({ dueBefore = "2026-01-20T00:00:00.001Z" }))
      assert.are.same(set_of({ e.id, b.id, d.id }), ids_of({ dueAfter = "2026-01-20" }))
      assert.are.same(set_of({ e.id, b.id }), ids_of({ dueAfter = "2026-01-11", dueBefore = "2026-03-01" }))
    end)

    it("searches title and description with websearch syntax (q)", function()
      assert.are.same(set_of({ a.id, b.id }), ids_of({ q = "migration" }))
      assert.are.same(set_of({ a.id, b.id }), ids_of({ q = "migrations" })) -- stemming
      assert.are.same(set_of({ a.id }), ids_of({ q = "migration -notes" }))
      assert.are.same(set_of({ c.id, d.id }), ids_of({ q = "login or offsite" }))
      assert.are.same(set_of({ a.id }), ids_of({ q = '"database migration"' }))
      assert.are.same({}, ids_of({ q = "nothingmatcheshere" }))
    end)

    it("combines filters with AND", function()
      assert.are.same(set_of({ a.id }), ids_of({ tag = "backend", status = "todo,done", assigneeId = "me" }))
    end)

    it("without projectId covers only the projects the caller is a member of", function()
      local other = T.project(u2) -- u1 is not a member
      local x = T.create(u2.access, other, { title = "elsewhere" })
      local pub = T.project(u2, { visibility = "public" })
      local y = T.create(u2.access, pub, { title = "public elsewhere" })
      local mine = set_of((list_ids(u1.access, { limit = 100 })))
      for _, t in ipairs({ a, b, c, d, e }) do
        assert.is_true(mine[t.id], t.title)
      end
      assert.is_nil(mine[x.id])
      assert.is_nil(mine[y.id])
      local theirs = set_of((list_ids(u2.access, { limit = 100 })))
      assert.is_true(theirs[x.id])
      assert.is_true(theirs[y.id])
      -- a public project can still be listed by id by a non-member
      assert.are.same(set_of({ y.id }), set_of((list_ids(u1.access, { projectId = pub }))))
      assert.are.same(set_of({ y.id }), set_of((list_ids(outsider.access, { projectId = pub }))))
    end)

    it("answers 404 for a projectId the caller may not read", function()
      h.expect_error(list(outsider.access, { projectId = p }), 404, "not_found")
      h.expect_error(list(u1.access, { projectId = ZERO_UUID }), 404, "not_found")
      h.expect_error(call("GET", "/projects/" .. p .. "/tasks", outsider.access), 404, "not_found")
      h.expect_error(call("GET", "/projects/not-a-uuid/tasks", u1.access), 404, "not_found")
    end)

    it("answers an empty page for a readable project without tasks, 404 to a caller who may not read it",
      function()
        local empty = T.project(u1)
        local ids, body = list_ids(u1.access, { projectId = empty })
        assert.are.same({}, ids)
        assert.are.equal(null, body.meta.nextCursor)
        ids = list_ids(u1.access, { projectId = empty, status = "done", q = "nothing" })
        assert.are.same({}, ids)
        h.expect_error(list(outsider.access, { projectId = empty }), 404, "not_found")
        h.expect_error(list(u2.access, { projectId = empty, status = "todo" }), 404, "not_found")
      end)

    it("answers 404 before 400: a bad filter on a project the caller may not read", function()
      h.expect_error(list(outsider.access, { projectId = p, assigneeId = "someone" }), 404, "not_found")
      local cur = h.b64url_encode('["x","' .. ZERO_UUID .. '"]')
      h.expect_error(list(outsider.access, { projectId = p, cursor = cur }), 404, "not_found")
      h.expect_error(list(u1.access, { projectId = ZERO_UUID, assigneeId = "someone" }), 404, "not_found")
      h.expect_error(list(u1.access, { projectId = p, assigneeId = "someone" }), 400, "invalid_parameter")
    end)

    it("lists a private project for a global admin who is not a member, and an archived project", function()
      local ga = T.user("Global Admin Lister")
      h.psql(("UPDATE users SET role = 'admin' WHERE id = %s"):format(h.sql_literal(ga.id)))
      local token = h.login(ga.email, ga.password).accessToken
      assert.are.same(set_of({ a.id, b.id, c.id, d.id, e.id }), set_of((list_ids(token, { projectId = p }))))
      -- without projectId a global admin still sees only the projects it is a member of
      assert.is_nil(set_of((list_ids(token, { limit = 100 })))[a.id])
      local old = T.project(u1, { status = "archived" })
      h.psql(("INSERT INTO tasks (project_id, title, created_by) VALUES (%s, 'archived one', %s)"):format(
        h.sql_literal(old), h.sql_literal(u1.id)))
      local ids = list_ids(u1.access, { projectId = old })
      assert.are.equal(1, #ids)
    end)

    local bad = {
      { limit = "0" }, { limit = "101" }, { limit = "ten" }, { limit = "1.5" },
      { cursor = "!!!" }, { cursor = "bm90IGpzb24" }, { cursor = h.b64url_encode('["x"]') },
      { cursor = h.b64url_encode('["2026-01-01T00:00:00.000Z","not-a-uuid"]') },
      { cursor = h.b64url_encode('["2026-02-31T00:00:00.000Z","' .. ZERO_UUID .. '"]') },
      { cursor = h.b64url_encode('[null,"' .. ZERO_UUID .. '"]') },
      { cursor = h.b64url_encode('[7,"' .. ZERO_UUID .. '"]'), sort = "priority" },
      { cursor = h.b64url_encode('["x\' OR 1=1","' .. ZERO_UUID .. '"]'), sort = "dueDate" },
      { sort = "title" }, { sort = "createdat" }, { status = "todo,doing" }, { status = "" },
      { priority = "urgent,critical" }, { dueBefore = "soon" }, { dueAfter = "2026-02-30" },
      { assigneeId = "someone" }, { createdBy = "me" }, { projectId = "nope" }, { q = "" },
      { colour = "red" },
    }
    for _, params in ipairs(bad) do
      it("answers 400 invalid_parameter for " .. query(params), function()
        params.projectId = params.projectId or p
        h.expect_error(list(u1.access, params), 400, "invalid_parameter")
      end)
    end

    it("accepts a null cursor key only where the sort key can be null (dueDate)", function()
      local cur = h.b64url_encode('[null,"' .. ZERO_UUID .. '"]')
      h.expect_status(list(u1.access, { projectId = p, sort = "dueDate", cursor = cur }), 200)
      h.expect_status(list(u1.access, { projectId = p, sort = "-dueDate", cursor = cur }), 200)
    end)

    it("costs one SQL round trip for GET /tasks?projectId=…&limit=20 (the access check included)", function()
      for _, params in ipairs({ { projectId = p, limit = 20 }, { projectId = p, status = "todo,done" },
        { limit = 20 }, { projectId = p, q = "migration", sort = "-dueDate" } }) do
        local res = list(u1.access, params)
        h.expect_status(res, 200)
        local n = res.headers["x-query-count"]
        if n == nil then
          pending("no X-Query-Count header: the server does not run with TASKAPI_DEBUG_QUERIES=1")
          return
        end
        assert.are.equal("1", n, query(params))
      end
      local res = list(outsider.access, { projectId = p })
      h.expect_error(res, 404, "not_found")
      assert.are.equal("1", res.headers["x-query-count"])
    end)
  end)

  -- ---- notifications ------------------------------------------------------------------

  describe("notifications", function()
    local p, creator, worker, boss

    setup(function()
      creator, worker, boss = T.user("Creator"), T.user("Worker"), T.user("Boss")
      p = T.project(boss, { members = { { creator, "member" }, { worker, "member" } } })
    end)

    it("task_assigned goes to an assignee other than the caller on create", function()
      local t = T.create(creator.access, p, { title = "for worker", assigneeId = worker.id })
      local n = T.notifications(worker.id, "task_assigned")
      assert.are.equal(1, #n)
      assert.are.equal(t.id, n[1].data.taskId)
      assert.are.equal(p, n[1].data.projectId)
      assert.are.equal("for worker", n[1].data.title)
      assert.are.equal(creator.id, n[1].data.by)
      T.create(creator.access, p, { title = "for me", assigneeId = creator.id })
      assert.are.equal(0, #T.notifications(creator.id))
    end)

    it("task_assigned goes to a new assignee on PATCH, not on an unchanged one", function()
      local t = T.create(creator.access, p, { title = "reassign" })
      local before = #T.notifications(worker.id, "task_assigned")
      h.expect_status(patch(creator.access, t.id, { assigneeId = worker.id }), 200)
      assert.are.equal(before + 1, #T.notifications(worker.id, "task_assigned"))
      h.expect_status(patch(creator.access, t.id, { assigneeId = worker.id, title = "again" }), 200)
      assert.are.equal(before + 1, #T.notifications(worker.id, "task_assigned"))
    end)

    it("task_status_changed goes to the creator when someone else moves the task", function()
      local t = T.create(creator.access, p, { title = "status" })
      h.expect_status(patch(creator.access, t.id, { status = "in_progress" }), 200)
      assert.are.equal(0, #T.notifications(creator.id, "task_status_changed"))
      h.expect_status(patch(worker.access, t.id, { status = "done" }), 200)
      local n = T.notifications(creator.id, "task_status_changed")
      assert.are.equal(1, #n)
      assert.are.equal(t.id, n[1].data.taskId)
      assert.are.equal("in_progress", n[1].data.from)
      assert.are.equal("done", n[1].data.to)
      assert.are.equal(worker.id, n[1].data.by)
      -- a PATCH that changes nothing else leaves no notification
      h.expect_status(patch(worker.access, t.id, { status = "done" }), 200)
      assert.are.equal(1, #T.notifications(creator.id, "task_status_changed"))
    end)

    it("a failed write stores no notification", function()
      local t = T.create(creator.access, p, { title = "fail" })
      h.expect_error(patch(worker.access, t.id, { status = "done" }, { ["If-Match"] = '"9"' }), 412,
        "precondition_failed")
      h.expect_validation(T.create_res(creator.access, p, { title = "", assigneeId = worker.id }), { "title" })
      local n = T.notifications(creator.id, "task_status_changed")
      for _, x in ipairs(n) do
        assert.are_not.equal(t.id, x.data.taskId)
      end
    end)
  end)

  -- ---- hostile input --------------------------------------------------------------------

  describe("SQL-shaped strings", function()
    local NASTY = {
      "'; DROP TABLE tasks; --",
      "\" OR \"1\"=\"1",
      "1' OR '1'='1",
      "$1 $2 $$ $tag$",
      "\\'; SELECT pg_sleep(5); --",
      "{a,b} NULL \"{}\"",
      "ARRAY['x']::text[]",
      "%_\\",
      "<script>alert(1)</script>",
    }

    it("are stored verbatim in title, description and tags", function()
      for _, s in ipairs(NASTY) do
        local t = T.create(owner.access, project, { title = s, description = s, tags = { s, s .. "!" } })
        assert.are.equal(s, t.title)
        assert.are.equal(s, t.description)
        assert.are.same({ s, s .. "!" }, t.tags)
        local u = h.expect_status(patch(owner.access, t.id, { title = s .. "2", tags = { "NULL" } }), 200).data
        assert.are.equal(s .. "2", u.title)
        assert.are.same({ "NULL" }, u.tags)
        local got = h.expect_status(list(owner.access, { projectId = project, tag = s }), 200)
        local found = false
        for _, x in ipairs(got.data) do
          found = found or x.id == t.id
        end
        assert.is_false(found) -- the tag was replaced by the PATCH
      end
      -- tables still there
      h.psql("SELECT count(*) FROM tasks")
    end)

    it("never break a filter: q, tag, status, priority, assigneeId, createdBy, dates, sort, cursor", function()
      for _, s in ipairs(NASTY) do
        for _, key in ipairs({ "q", "tag", "status", "priority", "assigneeId", "createdBy", "dueBefore",
          "dueAfter", "sort", "cursor" }) do
          local res = list(owner.access, { projectId = project, [key] = s })
          assert.is_truthy(res.status == 200 or res.status == 400,
            key .. "=" .. s .. " -> " .. tostring(res.status) .. " " .. tostring(res.raw))
          if res.status == 400 then
            h.expect_error(res, 400, "invalid_parameter")
          end
        end
      end
      -- a tag filter with a hostile value finds the task that carries it
      local s = NASTY[1]
      local t = T.create(owner.access, project, { title = "tagged", tags = { s } })
      local got = h.expect_status(list(owner.access, { projectId = project, tag = s }), 200).data
      assert.are.equal(1, #got)
      assert.are.equal(t.id, got[1].id)
    end)
  end)
end)
