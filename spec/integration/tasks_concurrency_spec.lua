-- Concurrent writes to one task (API.md §4): PATCHes race from ten
-- background curl processes at once. With the same If-Match exactly one
-- wins and the rest get 412; without If-Match every PATCH lands on its own
-- version and none of them loses another's change.
local h = require "spec.integration.helper"
local T = require "spec.integration.support.tasks"

local ROUNDS = 3

local function statuses(results)
  local by = {}
  for _, r in ipairs(results) do
    by[r.status] = (by[r.status] or 0) + 1
  end
  return by
end

local function describe_results(results)
  local parts = {}
  for i, r in ipairs(results) do
    parts[i] = tostring(r.status) .. " " .. tostring(r.raw):sub(1, 120)
  end
  return table.concat(parts, "\n")
end

describe("concurrent PATCH /tasks/:id", function()
  local owner, other, project

  setup(function()
    owner, other = T.user("Racer"), T.user("Assignee")
    project = T.project(owner, { members = { { other, "member" } } })
  end)

  for round = 1, ROUNDS do
    it("with the same If-Match: exactly one 200 and nine 412 (round " .. round .. ")", function()
      local t = T.create(owner.access, project, { title = "race" })
      local reqs = {}
      for i = 1, 10 do
        reqs[i] = { method = "PATCH", path = "/tasks/" .. t.id, token = owner.access,
          headers = { ["If-Match"] = '"1"' }, body = { title = "winner " .. i } }
      end
      local results = T.curl_parallel(reqs)
      local by = statuses(results)
      assert.are.equal(1, by[200], describe_results(results))
      assert.are.equal(9, by[412], describe_results(results))
      local winner
      for i, r in ipairs(results) do
        if r.status == 412 then
          assert.are.equal("precondition_failed", r.body.error.code)
        else
          winner = i
          assert.are.equal(2, math.tointeger(r.body.data.version))
        end
      end
      local now = h.expect_status(T.call("GET", "/tasks/" .. t.id, owner.access), 200).data
      assert.are.equal(2, math.tointeger(now.version))
      assert.are.equal("winner " .. winner, now.title)
    end)

    it("without If-Match: ten PATCHes of different fields all land, version 11 (round " .. round .. ")",
      function()
        local t = T.create(owner.access, project, { title = "merge" })
        local bodies = {
          { title = "new title" },
          { description = "new description" },
          { assigneeId = other.id },
          { dueDate = "2026-09-01" },
          { tags = { "x", "y" } },
          { status = "in_progress" },
          { status = "in_review" },
          { priority = "high" },
          { priority = "urgent" },
          { priority = "low" },
        }
        local reqs = {}
        for i, b in ipairs(bodies) do
          reqs[i] = { method = "PATCH", path = "/tasks/" .. t.id, token = owner.access, body = b }
        end
        local results = T.curl_parallel(reqs)
        assert.are.equal(10, statuses(results)[200], describe_results(results))
        -- each landed on its own version: 2..11, once each
        local versions = {}
        for _, r in ipairs(results) do
          local v = math.tointeger(r.body.data.version)
          assert.is_nil(versions[v], "two answers with version " .. tostring(v))
          versions[v] = true
        end
        for v = 2, 11 do
          assert.is_true(versions[v], "no answer with version " .. v)
        end
        local now = h.expect_status(T.call("GET", "/tasks/" .. t.id, owner.access), 200).data
        assert.are.equal(11, math.tointeger(now.version))
        assert.are.equal("new title", now.title)
        assert.are.equal("new description", now.description)
        assert.are.equal(other.id, now.assigneeId)
        assert.are.equal("2026-09-01T00:00:00.000Z", now.dueDate)
        assert.are.same({ "x", "y" }, now.tags)
        assert.is_truthy(now.status == "in_progress" or now.status == "in_review", now.status)
        assert.is_truthy(({ high = 1, urgent = 1, low = 1 })[now.priority], now.priority)
        -- the answer with version 11 is the state that stuck
        for _, r in ipairs(results) do
          if math.tointeger(r.body.data.version) == 11 then
            assert.are.same(now, r.body.data)
          end
        end
      end)
  end

  it("a DELETE racing PATCHes with the same If-Match: exactly one wins", function()
    local t = T.create(owner.access, project, { title = "delete race" })
    local reqs = {}
    for i = 1, 6 do
      reqs[i] = { method = "PATCH", path = "/tasks/" .. t.id, token = owner.access,
        headers = { ["If-Match"] = '"1"' }, body = { title = "p" .. i } }
    end
    reqs[7] = { method = "DELETE", path = "/tasks/" .. t.id, token = owner.access,
      headers = { ["If-Match"] = '"1"' } }
    local results = T.curl_parallel(reqs)
    local by = statuses(results)
    assert.are.equal(1, (by[200] or 0) + (by[204] or 0), describe_results(results))
    for _, r in ipairs(results) do
      assert.is_truthy(r.status == 200 or r.status == 204 or r.status == 412 or r.status == 404,
        describe_results(results))
    end
    local now = T.call("GET", "/tasks/" .. t.id, owner.access)
    if by[204] == 1 then
      h.expect_error(now, 404, "not_found")
    else
      assert.are.equal(2, math.tointeger(h.expect_status(now, 200).data.version))
    end
  end)
end)
