-- Unit specs for scripts/lib/task_list.lua, the task list's statement
-- builder: every shape builds from the constant pieces only (no value ever
-- reaches the text), numbers its parameters $1..$n without gaps, and has no
-- catch-all `($n IS NULL OR ...)` filter left. spec/unit/sql_static_spec.lua
-- checks the call site (db.query(task_list.SQL[key], ...)); this checks the
-- builder behind it. spec/integration/task_list_spec.lua prepares shapes on
-- PostgreSQL.
-- luacheck: std lua54+busted

package.preload["tk.db"] = package.preload["tk.db"] or function()
  return setmetatable({}, { __index = function(_, k)
    return function()
      error("tk.db." .. k .. " is not available in unit specs", 2)
    end
  end })
end

local task_list = require "lib.task_list"

local FILTERS = { "status", "priority", "assignee", "unassigned", "created_by", "tag",
  "due_before", "due_after", "q" }
local SORTS = { "-createdAt", "createdAt", "-updatedAt", "updatedAt", "dueDate", "-dueDate",
  "priority", "-priority" }
local SENTINEL = "'; DROP TABLE tasks; --"

-- Values for the filters in bit set `bits`, each one the sentinel (or true).
local function values_for(bits, one_project, cursor)
  local v = { user = SENTINEL .. "user", limit = 21, project = one_project and SENTINEL .. "p" or nil }
  for i, name in ipairs(FILTERS) do
    if bits & (1 << (i - 1)) ~= 0 then
      v[name] = name == "unassigned" or SENTINEL .. name
    end
  end
  if cursor == "after" then
    v.after_key, v.after_id = SENTINEL .. "key", SENTINEL .. "id"
  elseif cursor == "after_null" then
    v.after_id = SENTINEL .. "id"
  end
  return v
end

local function check_shape(key, v)
  local sql = task_list.SQL[key]
  assert.is_nil(sql:find("DROP TABLE", 1, true), key)
  assert.is_nil(sql:find("{", 1, true), key)
  local args = table.pack(task_list.args(key, v))
  local seen = {}
  for n in sql:gmatch("%$(%d+)") do
    seen[tonumber(n)] = true
  end
  for i = 1, args.n do
    assert.is_true(seen[i], key .. ": $" .. i .. " unused")
    assert.is_not_nil(args[i], key .. ": $" .. i .. " has no value")
  end
  assert.is_nil(seen[args.n + 1], key .. ": a parameter without a value")
  -- No catch-all: IS NULL only in the undated-group cursor conditions and
  -- the unassigned filter, never on a parameter.
  assert.is_nil(sql:find("%$%d+[:%w]*%s+IS%s+NULL"), key)
  assert.is_nil(sql:find("IS NOT TRUE", 1, true), key)
  return sql, args
end

describe("lib.task_list", function()
  -- Every filter combination for two sorts (one with the undated-group
  -- cursor); for the others no filter, each filter alone, and all of them.
  local SAMPLE = { 0, (1 << #FILTERS) - 1 }
  for i = 1, #FILTERS do
    SAMPLE[#SAMPLE + 1] = 1 << (i - 1)
  end
  local ALL = {}
  for bits = 0, (1 << #FILTERS) - 1 do
    ALL[#ALL + 1] = bits
  end

  it("builds every shape from constants, with parameters $1..$n", function()
    local count = 0
    for _, one_project in ipairs({ true, false }) do
      for _, sort in ipairs(SORTS) do
        local cursors = { "none", "after" }
        if sort:find("dueDate", 1, true) then
          cursors[3] = "after_null"
        end
        for _, cursor in ipairs(cursors) do
          local set = (sort == "-createdAt" or sort == "-dueDate") and ALL or SAMPLE
          for _, bits in ipairs(set) do
            local v = values_for(bits, one_project, cursor)
            check_shape(task_list.key(one_project, sort, v), v)
            count = count + 1
          end
        end
      end
    end
    assert.are.equal(2 * (2 * 512 + 3 * 512 + 5 * 2 * 11 + 3 * 11), count)
  end)

  it("passes each value as the parameter its piece names", function()
    local v = { project = "P", user = "U", limit = 21, status = { "todo" }, tag = "T" }
    local key = task_list.key(true, "-createdAt", v)
    assert.are.equal("project -createdAt status,tag - 21", key)
    local sql = task_list.SQL[key]
    local args = table.pack(task_list.args(key, v))
    local position = {}
    for i = 1, args.n do
      position[args[i]] = i
    end
    assert.matches("p.id = $" .. position.P .. "::uuid", sql, 1, true)
    assert.matches("m.user_id = $" .. position.U .. "::uuid", sql, 1, true)
    assert.matches("ANY($" .. position[v.status] .. "::text[])", sql, 1, true)
    assert.matches("ARRAY[$" .. position.T .. "::text]", sql, 1, true)
    assert.matches("LIMIT $" .. position[21], sql, 1, true)
  end)

  it("counts unassigned only when true, and a false filter as absent", function()
    assert.are.equal("mine -createdAt - - 11",
      task_list.key(false, "-createdAt", { user = "U", limit = 2, unassigned = false }))
    assert.are.equal("mine -createdAt unassigned - 11",
      task_list.key(false, "-createdAt", { user = "U", limit = 2, unassigned = true }))
  end)

  it("reads at most a constant bucket per project, the page is the outer LIMIT $n", function()
    for limit, bucket in pairs({ [2] = 11, [11] = 11, [12] = 21, [21] = 21, [22] = 51, [101] = 101 }) do
      local v = { project = "P", user = "U", limit = limit }
      local key = task_list.key(true, "-createdAt", v)
      assert.matches(" " .. bucket .. "$", key)
      local sql = task_list.SQL[key]
      assert.matches("LIMIT " .. bucket .. "\n", sql, 1, true)
      assert.matches("LIMIT %$%d+%s*$", sql)
    end
    assert.has_error(function()
      task_list.key(true, "-createdAt", { project = "P", user = "U", limit = 102 })
    end)
  end)

  it("refuses a key that names no known piece (a bug in the caller)", function()
    for _, key in ipairs({ "project -createdAt - - 21; DROP", "all -createdAt - - 21",
      "project name - - 21", "project -createdAt status,evil - 21", "project -createdAt - after_null 21",
      "project -createdAt - - 20", "project -createdAt - -", "project -createdAt" }) do
      assert.has_error(function()
        return task_list.SQL[key]
      end)
    end
  end)
end)
