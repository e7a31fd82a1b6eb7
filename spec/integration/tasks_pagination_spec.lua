-- Keyset pagination of GET /tasks (API.md §1, §4): under each of the eight
-- sort orders, walking 45 tasks ten at a time yields every task exactly
-- once and in the right order (ties broken by id, tasks without a due date
-- last in both directions, priority by rank), and a walk stays exact while
-- new tasks are inserted between page fetches.
local h = require "spec.integration.helper"
local T = require "spec.integration.support.tasks"

local null = h.null

local SORTS = { "createdAt", "-createdAt", "updatedAt", "-updatedAt", "dueDate", "-dueDate", "priority",
  "-priority" }
local RANK = { low = 1, medium = 2, high = 3, urgent = 4 }
local DUE = { "2026-03-01", "2026-01-15T08:00:00Z", "2026-01-15", "2025-12-31T23:59:59.999Z", "2026-07-04",
  "2026-01-15" } -- repeats on purpose: ties go by id
local PRIORITIES = { "low", "medium", "high", "urgent", "medium" }

-- Fields for the i-th task: every fifth has no due date.
local function fields(i, prefix)
  return {
    title = (prefix or "task ") .. i,
    priority = PRIORITIES[i % #PRIORITIES + 1],
    dueDate = (i % 5 ~= 0) and DUE[i % #DUE + 1] or nil,
  }
end

-- The expected order of `tasks` (Task objects) under sort `name`.
local function expected(tasks, name)
  local desc = name:sub(1, 1) == "-"
  local field = desc and name:sub(2) or name
  local list = {}
  for i, t in ipairs(tasks) do
    list[i] = t
  end
  local function key(t)
    if field == "priority" then
      return RANK[t.priority]
    end
    local v = t[field]
    if v == null then
      return nil
    end
    return v
  end
  table.sort(list, function(a, b)
    local ka, kb = key(a), key(b)
    if ka == nil or kb == nil then
      if ka ~= nil then
        return true -- keys before no key, both directions
      elseif kb ~= nil then
        return false
      end
    elseif ka ~= kb then
      if desc then
        return ka > kb
      end
      return ka < kb
    end
    if desc then
      return a.id > b.id
    end
    return a.id < b.id
  end)
  local ids = {}
  for i, t in ipairs(list) do
    ids[i] = t.id
  end
  return ids
end

local function count(ids)
  local seen, dup = {}, {}
  for _, id in ipairs(ids) do
    if seen[id] then
      dup[#dup + 1] = id
    end
    seen[id] = true
  end
  return seen, dup
end

describe("GET /tasks pagination", function()
  local owner, project, tasks

  setup(function()
    owner = T.user("Pager")
    project = T.project(owner)
    for i = 1, 45 do
      T.create(owner.access, project, fields(i))
    end
    -- Change a few, so updatedAt orders differently from createdAt.
    local first = h.expect_status(T.call("GET", "/tasks?limit=100&sort=createdAt&projectId=" .. project,
      owner.access), 200).data
    for i = 1, 45, 4 do
      h.expect_status(T.call("PATCH", "/tasks/" .. first[i].id, owner.access, { title = "changed " .. i }), 200)
    end
    tasks = h.expect_status(T.call("GET", "/tasks?limit=100&projectId=" .. project, owner.access), 200).data
    assert.are.equal(45, #tasks)
  end)

  for _, sort in ipairs(SORTS) do
    it("walks 45 tasks, 10 a page, sorted by " .. sort .. ": each once, in order", function()
      local ids, pages = T.walk(owner.access, "/tasks?limit=10&sort=" .. sort .. "&projectId=" .. project)
      assert.are.equal(5, pages)
      local _, dup = count(ids)
      assert.are.same({}, dup)
      assert.are.same(expected(tasks, sort), ids)
      -- the project route walks the same way
      local ids2 = T.walk(owner.access, "/projects/" .. project .. "/tasks?limit=10&sort=" .. sort)
      assert.are.same(ids, ids2)
    end)
  end

  it("puts tasks without a due date last in both directions", function()
    for _, sort in ipairs({ "dueDate", "-dueDate" }) do
      local got = h.expect_status(T.call("GET", "/tasks?limit=100&sort=" .. sort .. "&projectId=" .. project,
        owner.access), 200).data
      local seen_null = false
      for _, t in ipairs(got) do
        if t.dueDate == null then
          seen_null = true
        else
          assert.is_false(seen_null, sort .. ": a dated task after an undated one")
        end
      end
      assert.is_true(seen_null)
    end
  end)

  it("a page whose cursor sits inside the undated group goes on inside it (limit=1 walk)", function()
    for _, sort in ipairs({ "dueDate", "-dueDate" }) do
      local ids = T.walk(owner.access, "/tasks?limit=1&sort=" .. sort .. "&projectId=" .. project)
      assert.are.same(expected(tasks, sort), ids)
    end
  end)

  it("stays exact while tasks are inserted between page fetches, under every sort", function()
    local p = T.project(owner)
    for i = 1, 25 do
      T.create(owner.access, p, fields(i, "stable "))
    end
    local n = 0
    for _, sort in ipairs(SORTS) do
      local at_start = h.expect_status(T.call("GET", "/tasks?limit=100&projectId=" .. p, owner.access), 200).data
      local ids = T.walk(owner.access, "/tasks?limit=10&sort=" .. sort .. "&projectId=" .. p, function()
        for _ = 1, 3 do
          n = n + 1
          T.create(owner.access, p, fields(n, "inserted "))
        end
      end)
      local seen, dup = count(ids)
      assert.are.same({}, dup, sort .. ": a task came twice")
      for _, t in ipairs(at_start) do
        assert.is_true(seen[t.id] == true, sort .. ": " .. t.title .. " was skipped")
      end
      -- The tasks that existed at the start keep their relative order.
      local pos = {}
      for i, id in ipairs(ids) do
        pos[id] = i
      end
      local order = expected(at_start, sort)
      for i = 2, #order do
        assert.is_true(pos[order[i - 1]] < pos[order[i]], sort .. ": order broken")
      end
    end
  end)

  it("walks the caller's projects without projectId", function()
    local u = T.user("Two projects")
    local p1, p2 = T.project(u), T.project(u)
    T.project(owner, { visibility = "public" }) -- not u's: never listed
    local all = {}
    for i = 1, 12 do
      all[#all + 1] = T.create(u.access, i % 2 == 0 and p1 or p2, fields(i))
    end
    for _, sort in ipairs({ "-createdAt", "dueDate", "-priority" }) do
      local ids = T.walk(u.access, "/tasks?limit=5&sort=" .. sort)
      assert.are.same(expected(all, sort), ids)
    end
  end)
end)
