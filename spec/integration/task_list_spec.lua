-- The task list's statements (scripts/lib/task_list.lua) on PostgreSQL:
-- every sort and scope, each cursor kind, with no filter, each filter alone
-- and all of them, must PREPARE (parse, bind types, plan) in the test
-- database. The unit spec checks the builder; this checks that what it
-- builds is SQL the server accepts, including the shapes no route spec
-- happens to send.
local h = require "spec.integration.helper"

package.preload["tk.db"] = package.preload["tk.db"] or function()
  return {}
end
local task_list = require "lib.task_list"

local FILTERS = { "status", "priority", "assignee", "unassigned", "created_by", "tag",
  "due_before", "due_after", "q" }
local SORTS = { "-createdAt", "createdAt", "-updatedAt", "updatedAt", "dueDate", "-dueDate",
  "priority", "-priority" }

describe("task list statements", function()
  it("prepare on PostgreSQL in every sort, scope, cursor kind and filter set", function()
    local keys = {}
    for _, one_project in ipairs({ true, false }) do
      for _, sort in ipairs(SORTS) do
        for _, cursor in ipairs({ "none", "after", "after_null" }) do
          if cursor ~= "after_null" or sort:find("dueDate", 1, true) then
            local sets = { {}, FILTERS }
            for _, f in ipairs(FILTERS) do
              sets[#sets + 1] = { f }
            end
            for _, set in ipairs(sets) do
              local v = { user = 1, limit = 1, project = one_project and 1 or nil,
                after_id = cursor ~= "none" and 1 or nil, after_key = cursor == "after" and 1 or nil }
              for _, f in ipairs(set) do
                v[f] = 1
              end
              keys[#keys + 1] = task_list.key(one_project, sort, v)
            end
          end
        end
      end
    end
    -- In batches (one psql session each, whose prepared statements end with
    -- it; only the last statement's result is printed).
    local BATCH = 30
    for first = 1, #keys, BATCH do
      local script, n = {}, 0
      for i = first, math.min(first + BATCH - 1, #keys) do
        script[#script + 1] = ("PREPARE task_list_%d AS %s;"):format(i, task_list.SQL[keys[i]])
        n = n + 1
      end
      script[#script + 1] = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'task_list_%'"
      assert.are.equal(tostring(n), h.psql(table.concat(script, "\n")))
    end
    assert.is_true(#keys > 300)
  end)
end)
