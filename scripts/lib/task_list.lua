-- The task list's SQL (GET /tasks, GET /projects/:id/tasks): one statement
-- per filter shape (which filters are present, the sort, one project or the
-- caller's projects, and the kind of cursor), so that each statement's
-- prepared (generic) plan is the right one for every value bound to it. A
-- catch-all statement with `($n IS NULL OR ...)` per filter has no good
-- generic plan and has to be planned afresh on every execution.
--
-- Statements are built only from the constant pieces below, on first use of
-- a shape, and cached (tk.db prepares each text once per connection). The
-- builder takes a shape key, never a value: values travel as $n parameters
-- in the order M.args gives them.
--
--   local key = task_list.key(project_id ~= nil, sort, values)
--   local rows = db.query(task_list.SQL[key], task_list.args(key, values))
--
-- values: project, user, limit (page size + 1, at most 101), and the
-- filters present:
-- status, priority (arrays), assignee, unassigned (true), created_by, tag,
-- due_before, due_after, q, after_key / after_id (the cursor).
--
-- One project: every row also carries the caller's access to the project
-- (project_visibility, project_status, project_owner_id and my_role;
-- lib.tasks.project_of shapes them for policies.permissions), so a page
-- with tasks needs no second round trip: the route decides from the first
-- row, then writes or refuses the page. No row (no such project, or no task
-- matches) leaves the route to load the project for its answer: one more
-- round trip for an empty page only. (Rows stay plain task rows, so C can
-- write them as JSON by tasks.PROJECTION.)
--
-- Tasks are read per project through LATERAL: at most one page from each
-- project, from its (project_id, sort key) index, then merged. The cost is
-- the page size times the caller's projects, whatever the other projects
-- hold.
local tasks = require "lib.tasks"

local error, ipairs, setmetatable, tostring, unpack = error, ipairs, setmetatable, tostring, table.unpack

local M = {}

-- Where the rows come from. {name} marks a parameter; the builder numbers
-- parameters in their order of first appearance.
local SCOPE_HEAD = {
  -- One project ({project}), with the caller's ({user}) membership.
  project = [[
  SELECT t.*, s.visibility AS project_visibility, s.status AS project_status,
         s.owner_id AS project_owner_id, s.my_role
    FROM (SELECT p.id, p.visibility, p.status, p.owner_id, m.role AS my_role
            FROM projects p
            LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = {user}::uuid
           WHERE p.id = {project}::uuid) s
   CROSS JOIN LATERAL (
      SELECT ]] .. tasks.COLUMNS .. [[

        FROM tasks t
       WHERE t.project_id = s.id]],
  -- Every project the caller is a member of.
  mine = [[
  SELECT t.*
    FROM project_members s
   CROSS JOIN LATERAL (
      SELECT ]] .. tasks.COLUMNS .. [[

        FROM tasks t
       WHERE t.project_id = s.project_id]],
}

local SCOPE_TAIL = {
  project = [[
) t]],
  mine = [[
) t
   WHERE s.user_id = {user}::uuid]],
}

-- The filters, in the order they appear in a statement. tag and q are
-- written as the functions behind `@>` and `@@` (arraycontains, ts_match_vq:
-- same results), which the GIN indexes on tasks.tags and tasks.search cannot
-- serve: those indexes hold every project's tasks, so a common tag or word
-- would cost in proportion to the whole table (measured: 250,000 index
-- entries for one tag with 1,000,000 tasks elsewhere, 79 ms). As filters on
-- the project's ordered index scan they cost at most the project's own
-- tasks, and stop as soon as the page is full.
local FILTER_NAMES = { "status", "priority", "assignee", "unassigned", "created_by", "tag",
  "due_before", "due_after", "q" }

local FILTER = {
  status = [[
         AND t.status = ANY({status}::text[])]],
  priority = [[
         AND t.priority = ANY({priority}::text[])]],
  assignee = [[
         AND t.assignee_id = {assignee}::uuid]],
  unassigned = [[
         AND t.assignee_id IS NULL]],
  created_by = [[
         AND t.created_by = {created_by}::uuid]],
  tag = [==[
         AND arraycontains(t.tags, ARRAY[{tag}::text])]==],
  due_before = [[
         AND t.due_date < {due_before}::timestamptz]],
  due_after = [[
         AND t.due_date >= {due_after}::timestamptz]],
  q = [[
         AND ts_match_vq(t.search, websearch_to_tsquery('english', {q}::text))]],
}

-- Per sort order: the ORDER BY (inside each project and again for the
-- merge), and the keyset condition for a cursor (rows strictly after
-- ({after_key}, {after_id}) in that order). Ties go by id in the sort's
-- direction. Tasks without a due date come last in both directions: a cursor
-- inside that group carries a null key (cursor kind "after_null") and walks
-- it by id alone; a cursor in the dated group also admits the whole undated
-- group.
local SORT = {
  createdAt = {
    order = [[
       ORDER BY t.created_at ASC, t.id ASC]],
    after = [[
         AND (t.created_at, t.id) > ({after_key}::timestamptz, {after_id}::uuid)]],
  },
  ["-createdAt"] = {
    order = [[
       ORDER BY t.created_at DESC, t.id DESC]],
    after = [[
         AND (t.created_at, t.id) < ({after_key}::timestamptz, {after_id}::uuid)]],
  },
  updatedAt = {
    order = [[
       ORDER BY t.updated_at ASC, t.id ASC]],
    after = [[
         AND (t.updated_at, t.id) > ({after_key}::timestamptz, {after_id}::uuid)]],
  },
  ["-updatedAt"] = {
    order = [[
       ORDER BY t.updated_at DESC, t.id DESC]],
    after = [[
         AND (t.updated_at, t.id) < ({after_key}::timestamptz, {after_id}::uuid)]],
  },
  priority = {
    order = [[
       ORDER BY t.priority_rank ASC, t.id ASC]],
    after = [[
         AND (t.priority_rank, t.id) > ({after_key}::smallint, {after_id}::uuid)]],
  },
  ["-priority"] = {
    order = [[
       ORDER BY t.priority_rank DESC, t.id DESC]],
    after = [[
         AND (t.priority_rank, t.id) < ({after_key}::smallint, {after_id}::uuid)]],
  },
  dueDate = {
    order = [[
       ORDER BY t.due_date ASC NULLS LAST, t.id ASC]],
    after = [[
         AND (t.due_date IS NULL OR (t.due_date, t.id) > ({after_key}::timestamptz, {after_id}::uuid))]],
    after_null = [[
         AND t.due_date IS NULL AND t.id > {after_id}::uuid]],
  },
  ["-dueDate"] = {
    order = [[
       ORDER BY t.due_date DESC NULLS LAST, t.id DESC]],
    after = [[
         AND (t.due_date IS NULL OR (t.due_date, t.id) < ({after_key}::timestamptz, {after_id}::uuid))]],
    after_null = [[
         AND t.due_date IS NULL AND t.id < {after_id}::uuid]],
  },
}

-- Each project gives at most a constant number of rows, the smallest of
-- these that holds the page (limit + 1). A constant, not {limit}: with
-- `LIMIT $n` the generic plan assumes it fetches a tenth of the rows, costs
-- more than a custom plan for LIMIT 21, and PostgreSQL then plans every
-- execution afresh (measured: 0.3-0.4 ms of planning per list request with
-- 1,000,000 tasks). The exact page size is the outer LIMIT {limit}.
local BUCKETS = { 11, 21, 51, 101 }
local INNER_LIMIT = {
  ["11"] = "       LIMIT 11",
  ["21"] = "       LIMIT 21",
  ["51"] = "       LIMIT 51",
  ["101"] = "       LIMIT 101",
}
local MERGE_ORDER = "   "
local MERGE_LIMIT = "   LIMIT {limit}"



local function split(s, sep)
  local out = {}
  for part in s:gmatch("[^" .. sep .. "]+") do
    out[#out + 1] = part
  end
  return out
end

-- key -> { sql = text, names = { parameter names in $n order } }
local shapes = {}

-- Builds the statement of shape `key` (from M.key) out of the constants
-- above. Unknown parts are a bug in the caller: error().
local function build(key)
  local parts = split(key, " ")
  local scope, sort, filters, after = parts[1], SORT[parts[2] or ""], parts[3] or "-", parts[4] or "-"
  local inner_limit = INNER_LIMIT[parts[5] or ""]
  if SCOPE_HEAD[scope] == nil or sort == nil or inner_limit == nil or #parts ~= 5 then
    error("task_list: bad shape key '" .. tostring(key) .. "'", 3)
  end
  local pieces = { SCOPE_HEAD[scope] }
  if filters ~= "-" then
    for _, name in ipairs(split(filters, ",")) do
      if FILTER[name] == nil then
        error("task_list: unknown filter '" .. name .. "'", 3)
      end
      pieces[#pieces + 1] = FILTER[name]
    end
  end
  if after ~= "-" then
    if sort[after] == nil then
      error("task_list: unknown cursor kind '" .. after .. "'", 3)
    end
    pieces[#pieces + 1] = sort[after]
  end
  pieces[#pieces + 1] = sort.order
  pieces[#pieces + 1] = inner_limit
  pieces[#pieces + 1] = SCOPE_TAIL[scope]
  -- The merge: the sort's ORDER BY again, over the lateral subquery's
  -- columns (also named t), and the page.
  pieces[#pieces + 1] = MERGE_ORDER .. sort.order:match("ORDER BY .*$")
  pieces[#pieces + 1] = MERGE_LIMIT
  local sql = table.concat(pieces, "\n")
  -- {name} -> $n, numbered by first appearance.
  local names, number = {}, {}
  sql = sql:gsub("{([%w_]+)}", function(name)
    if number[name] == nil then
      names[#names + 1] = name
      number[name] = #names
    end
    return "$" .. number[name]
  end)
  return { sql = sql, names = names }
end

local function shape(key)
  local s = shapes[key]
  if s == nil then
    s = build(key)
    shapes[key] = s
  end
  return s
end

--- The shape key for a list of one project (`one_project` true) or of the
--- caller's projects, in `sort` (a SORT name), with the filters of `values`
--- that are not nil (unassigned counts only when true).
function M.key(one_project, sort, values)
  local present = {}
  for _, name in ipairs(FILTER_NAMES) do
    local v = values[name]
    if v ~= nil and v ~= false then
      present[#present + 1] = name
    end
  end
  local after = "-"
  if values.after_id ~= nil then
    after = values.after_key == nil and "after_null" or "after"
  end
  local bucket
  for _, b in ipairs(BUCKETS) do
    if values.limit <= b then
      bucket = b
      break
    end
  end
  if bucket == nil then
    error("task_list: limit " .. tostring(values.limit) .. " is over " .. BUCKETS[#BUCKETS], 2)
  end
  return (one_project and "project" or "mine") .. " " .. sort .. " "
    .. (#present > 0 and table.concat(present, ",") or "-") .. " " .. after .. " " .. bucket
end

--- The statement text of a shape key, built on first use.
M.SQL = setmetatable({}, {
  __index = function(_, key)
    return shape(key).sql
  end,
})

--- The parameters of shape `key`, in $n order, taken from `values`.
function M.args(key, values)
  local names = shape(key).names
  local out = {}
  for i, name in ipairs(names) do
    out[i] = values[name]
  end
  return unpack(out, 1, #names)
end

return M
