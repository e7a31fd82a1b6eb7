-- Prints a psql script that shows the plans PostgreSQL keeps for the hot
-- statements, taken from the scripts themselves (lib.task_list, lib.tasks,
-- routes/search.lua): each is PREPAREd, plan_cache_mode is forced to
-- generic (the plan a prepared statement settles on after five executions;
-- PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN)), executed once to warm the
-- caches, then shown with EXPLAIN (ANALYZE, BUFFERS).
--
--   lua5.4 bench/scale/explain.lua PROJECT_ID USER_ID | psql -X -q "$DATABASE_URL"
--
-- PLAN_MODE=auto leaves plan_cache_mode at its default and executes each
-- statement six times first: the plan shown is then the one PostgreSQL
-- chose to keep (generic when it shows $n parameters, else a custom plan
-- made again for every execution).
--
-- bench/scale.sh runs it on the large database (var/scale/explain.txt).
package.path = "scripts/?.lua;" .. package.path
package.preload["tk.db"] = function()
  return {}
end
-- lib.json's C half (runtime/lua/l_json.c): only its names are needed here
package.preload["tk.json"] = function()
  return { array_mt = {}, encode = function() end, shape = function() return {} end,
    is_fragment = function() return false end }
end

local project, user = arg[1], arg[2]
assert(project and user, "usage: lua5.4 bench/scale/explain.lua PROJECT_ID USER_ID")

local task_list = require "lib.task_list"
local tasks = require "lib.tasks"

-- routes/search.lua's SEARCH table: the chunk run with stand-ins for the
-- modules it requires, returning SEARCH instead of the route group.
local function search_statements()
  local f = assert(io.open("scripts/routes/search.lua", "rb"))
  local src = f:read("a")
  f:close()
  local chunk = src:gsub("\nreturn r%s*$", "\nreturn SEARCH\n")
  local stub = setmetatable({}, { __index = function(t)
    return t
  end, __call = function(t)
    return t
  end })
  local env = setmetatable({ require = function(name)
    if name == "lib.route" then
      return { group = function()
        return setmetatable({}, { __index = function()
          return function() end
        end })
      end }
    end
    return stub
  end }, { __index = _G })
  return assert(load(chunk, "search.lua", "t", env))()
end

local function lit(v)
  if v == nil then
    return "NULL"
  end
  return "'" .. tostring(v):gsub("'", "''") .. "'"
end

local auto = os.getenv("PLAN_MODE") == "auto"
local WARM = auto and 6 or 1
local out = { "\\set ON_ERROR_STOP 1",
  auto and "SET plan_cache_mode = auto;" or "SET plan_cache_mode = force_generic_plan;" }
local n = 0

local function show(title, sql, args)
  n = n + 1
  local list = {}
  for i = 1, args.n do
    list[i] = lit(args[i])
  end
  local exec = ("EXECUTE s%d(%s)"):format(n, table.concat(list, ", "))
  out[#out + 1] = ("\\echo '### %s'"):format(title)
  out[#out + 1] = ("PREPARE s%d AS %s;"):format(n, sql)
  for _ = 1, WARM do
    out[#out + 1] = exec .. " \\g /dev/null"
  end
  out[#out + 1] = ("EXPLAIN (ANALYZE, BUFFERS) %s;"):format(exec)
end

local function list_case(title, one_project, sort, extra)
  local v = { user = user, limit = 21, project = one_project and project or nil }
  for k, x in pairs(extra or {}) do
    v[k] = x
  end
  local key = task_list.key(one_project, sort, v)
  show(title .. " [" .. key .. "]", task_list.SQL[key], table.pack(task_list.args(key, v)))
end

list_case("GET /tasks?projectId&limit=20", true, "-createdAt")
list_case("GET /tasks?projectId&status=todo,in_progress&limit=20", true, "-createdAt",
  { status = "{todo,in_progress}" })
list_case("GET /tasks?limit=20 (every project of the caller)", false, "-createdAt")
list_case("GET /tasks?projectId&sort=-dueDate&limit=20", true, "-dueDate")
list_case("GET /tasks?projectId&q=migration&limit=20", true, "-createdAt", { q = "migration" })

out[#out + 1] = ("SELECT id AS task_id FROM tasks WHERE project_id = %s ORDER BY id LIMIT 1 \\gset"):format(
  lit(project))
n = n + 1
out[#out + 1] = "\\echo '### GET /tasks/:id [lib.tasks.SELECT]'"
out[#out + 1] = ("PREPARE s%d AS %s;"):format(n, tasks.SELECT)
for _ = 1, WARM do
  out[#out + 1] = ("EXECUTE s%d(:'task_id', %s) \\g /dev/null"):format(n, lit(user))
end
out[#out + 1] = ("EXPLAIN (ANALYZE, BUFFERS) EXECUTE s%d(:'task_id', %s);"):format(n, lit(user))

local SEARCH = search_statements()
show("GET /search?q=migration [member]", SEARCH.member,
  table.pack(user, "migration", true, true, true, nil, nil, nil, 21))
show("GET /search?q=migration&projectId [project]", SEARCH.project,
  table.pack(project, "migration", true, true, true, nil, nil, nil, 21))

print(table.concat(out, "\n"))
