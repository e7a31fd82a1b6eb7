-- The activity plugin (plugins/activity): every committed change of a
-- project leaves one audit entry (who, what, which entity, when, a small
-- detail), written in the change's own transaction, and
-- GET /projects/:id/activity reads them newest first with a keyset cursor,
-- for anyone who may read the project.
--
-- Needs the suite's server to run with PLUGINS=webhooks,activity (see
-- spec/integration/server.env, which bin/test reads).
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"

local api = E.api()
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local function activity(user, project_id, query)
  return api.call("GET", "/projects/" .. project_id .. "/activity" .. (query or ""),
    user and user.access)
end

local function actions(list)
  local out = {}
  for i, e in ipairs(list) do
    out[i] = e.action
  end
  return out
end

describe("activity plugin", function()
  local owner, member, viewer, outsider

  setup(function()
    local res = h.call("GET", "/api/v1/openapi.json")
    assert(res.body and res.body.paths and res.body.paths["/api/v1/projects/{id}/activity"],
      "the test server runs without the activity plugin: start it with the variables of "
      .. "spec/integration/server.env (bin/test does)")
    owner, member = api.user("Owner"), api.user("Member")
    viewer, outsider = api.user("Viewer"), api.user("Outsider")
  end)

  it("records who did what to which entity, newest first, in the shape of the contract",
    function()
      local p = api.project(owner, { { member, "member" } })
      local task = api.task(member, p, { title = "Write the spec", description = "secret plans" })
      h.expect_status(api.call("PATCH", "/tasks/" .. task.id, owner.access,
        { status = "in_progress", priority = "high" }), 200)
      local c = h.expect_status(api.call("POST", "/tasks/" .. task.id .. "/comments", member.access,
        { content = "private words" }), 201).data
      local res = activity(owner, p)
      local body = h.expect_status(res, 200)
      assert.are.equal(20, body.meta.limit)
      assert.are.equal(h.null, body.meta.nextCursor)
      local list = body.data
      assert.are.same({ "comment.created", "task.updated", "task.created", "member.added" },
        actions(list))
      for _, e in ipairs(list) do
        assert.are.equal("action,actor,createdAt,detail,entityId,entityType,id", h.keys(e))
        assert.matches(UUID, e.id)
        assert.matches(TIME, e.createdAt)
      end
      local comment, updated, created, added = list[1], list[2], list[3], list[4]
      assert.are.equal("comment", comment.entityType)
      assert.are.equal(c.id, comment.entityId)
      assert.are.same({ taskId = task.id }, comment.detail)
      assert.are.same({ id = member.id, name = "Member" }, comment.actor)

      assert.are.equal("task", updated.entityType)
      assert.are.equal(task.id, updated.entityId)
      assert.are.equal(owner.id, updated.actor.id)
      assert.are.equal("Write the spec", updated.detail.title)
      assert.are.equal("in_progress", updated.detail.status)
      assert.are.equal("high", updated.detail.priority)
      table.sort(updated.detail.changes)
      assert.are.same({ "priority", "status" }, updated.detail.changes)

      assert.are.equal(task.id, created.entityId)
      assert.are.same({ title = "Write the spec", status = "todo", priority = "medium",
        assigneeId = h.null }, created.detail)
      assert.are.equal(member.id, created.actor.id)

      assert.are.equal("member", added.entityType)
      assert.are.equal(member.id, added.entityId)
      assert.are.same({ role = "member" }, added.detail)
      assert.are.equal(owner.id, added.actor.id)

      -- the trail is small on purpose: no descriptions, no comment text
      assert.is_nil(res.raw:find("secret plans", 1, true))
      assert.is_nil(res.raw:find("private words", 1, true))
    end)

  it("records deletions, member changes and project updates", function()
    local p = api.project(owner, { { member, "member" } })
    local task = api.task(owner, p, { title = "assigned", assigneeId = member.id })
    local c = h.expect_status(api.call("POST", "/tasks/" .. task.id .. "/comments", owner.access,
      { content = "to delete" }), 201).data
    h.expect_status(api.call("DELETE", "/comments/" .. c.id, owner.access), 204)
    h.expect_status(api.call("PATCH", "/projects/" .. p .. "/members/" .. member.id, owner.access,
      { role = "viewer" }), 200)
    h.expect_status(api.call("DELETE", "/projects/" .. p .. "/members/" .. member.id, owner.access),
      204)
    h.expect_status(api.call("PATCH", "/projects/" .. p, owner.access, { name = "renamed" }), 200)
    local other = api.task(owner, p, { title = "to delete" })
    h.expect_status(api.call("DELETE", "/tasks/" .. other.id, owner.access), 204)
    local list = h.expect_status(activity(owner, p), 200).data
    assert.are.same({ "task.deleted", "task.created", "project.updated", "member.removed",
      "task.updated", "member.updated", "comment.deleted", "comment.created", "task.created",
      "member.added" }, actions(list))
    assert.are.equal(other.id, list[1].entityId)
    assert.are.same({ name = "renamed", status = "active", visibility = "private" }, list[3].detail)
    assert.are.equal(member.id, list[4].entityId)
    -- removing the member unassigned their task: recorded in the same change
    assert.are.equal(task.id, list[5].entityId)
    assert.are.same({ "assigneeId" }, list[5].detail.changes)
    assert.are.equal(h.null, list[5].detail.assigneeId)
    assert.are.same({ role = "viewer" }, list[6].detail)
    assert.are.equal(c.id, list[7].entityId)
  end)

  it("records nothing for a change that fails", function()
    local p = api.project(owner)
    local task = api.task(owner, p, { title = "versioned" })
    h.expect_error(api.call("PATCH", "/tasks/" .. task.id, owner.access, { title = "" }), 422,
      "validation_failed")
    h.expect_error(h.call("PATCH", "/api/v1/tasks/" .. task.id, { token = owner.access,
      body = { title = "stale" }, headers = { ["If-Match"] = '"99"' } }), 412, "precondition_failed")
    h.expect_error(api.call("POST", "/projects/" .. p .. "/tasks", owner.access,
      { title = "x", assigneeId = outsider.id }), 422, "validation_failed")
    assert.are.same({ "task.created" }, actions(h.expect_status(activity(owner, p), 200).data))
  end)

  it("is readable by anyone who may read the project, and by no one else", function()
    local p = api.project(owner, { { viewer, "viewer" } })
    api.task(owner, p)
    h.expect_status(activity(viewer, p), 200)
    h.expect_error(activity(outsider, p), 404, "not_found")
    h.expect_error(activity(nil, p), 401, "unauthorized")
    h.expect_error(activity(owner, "not-a-uuid"), 404, "not_found")
    h.expect_error(activity(owner, "00000000-0000-4000-8000-000000000000"), 404, "not_found")
    local public = api.project(owner, nil, { name = "open", visibility = "public" })
    api.task(owner, public)
    assert.are.equal(1, #h.expect_status(activity(outsider, public), 200).data)
  end)

  it("pages newest first with a keyset cursor that is stable under new entries", function()
    local p = api.project(owner)
    for i = 1, 5 do
      api.task(owner, p, { title = "t" .. i })
    end
    local titles, cursor, pages = {}, nil, 0
    repeat
      local body = h.expect_status(activity(owner, p, "?limit=2" .. (cursor and "&cursor=" .. cursor
        or "")), 200)
      pages = pages + 1
      assert.are.equal(2, body.meta.limit)
      for _, e in ipairs(body.data) do
        titles[#titles + 1] = e.detail.title
      end
      if pages == 1 then
        api.task(owner, p, { title = "late" }) -- must not shift the pages being walked
      end
      cursor = body.meta.nextCursor ~= h.null and body.meta.nextCursor or nil
    until not cursor
    assert.are.same({ "t5", "t4", "t3", "t2", "t1" }, titles)
    assert.are.equal(3, pages)
    h.expect_error(activity(owner, p, "?cursor=bogus"), 400, "invalid_parameter")
    h.expect_error(activity(owner, p, "?limit=0"), 400, "invalid_parameter")
    h.expect_error(activity(owner, p, "?limit=101"), 400, "invalid_parameter")
  end)

  it("filters by action (comma list) and by entity", function()
    local p = api.project(owner)
    local a = api.task(owner, p, { title = "a" })
    local b = api.task(owner, p, { title = "b" })
    h.expect_status(api.call("PATCH", "/tasks/" .. a.id, owner.access, { status = "done" }), 200)
    local upd = h.expect_status(activity(owner, p, "?action=task.updated"), 200).data
    assert.are.same({ "task.updated" }, actions(upd))
    local both = h.expect_status(activity(owner, p, "?action=task.created,task.updated"), 200).data
    assert.are.equal(3, #both)
    local of_a = h.expect_status(activity(owner, p, "?entityId=" .. a.id), 200).data
    assert.are.same({ "task.updated", "task.created" }, actions(of_a))
    assert.are.equal(1, #h.expect_status(activity(owner, p, "?entityId=" .. b.id), 200).data)
    h.expect_error(activity(owner, p, "?action=task.exploded"), 400, "invalid_parameter")
    h.expect_error(activity(owner, p, "?entityId=nope"), 400, "invalid_parameter")
  end)

  it("keeps only a record of the deletion when the project is deleted", function()
    local p = api.project(owner)
    api.task(owner, p)
    h.expect_status(api.call("DELETE", "/projects/" .. p, owner.access), 204)
    h.expect_error(activity(owner, p), 404, "not_found")
    assert.are.equal("project.deleted|project|" .. owner.id, h.psql(("SELECT string_agg(action || '|' || "
      .. "entity_type || '|' || actor_id, ',') FROM activity WHERE project_id = %s"):format(h.sql_literal(p))))
  end)
end)
