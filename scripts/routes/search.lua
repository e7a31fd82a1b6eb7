-- /api/v1/search (API.md §7): full-text search over the tasks, comments and
-- projects the caller may read, in one statement. PostgreSQL does the
-- matching (websearch_to_tsquery over the generated `search` columns), the
-- ranking and the visibility rules; Lua only turns ts_headline's output into
-- safe HTML.
--
-- Snippets: the source text goes to ts_headline with the bytes 1-4 removed,
-- and `<`, `>` turned into bytes 3 and 4 (so the headline parser sees no
-- HTML tags, which it would silently drop). Hits are delimited by bytes 1
-- and 2. The snippet is then HTML-escaped as a whole and only then the four
-- bytes become <mark>, </mark>, &lt; and &gt;: nothing from the data can
-- open a tag. ts_headline runs in its single-excerpt mode: fragment mode
-- drops blank tokens at a fragment's edge, which would eat an escaped `<`.
--
-- Pagination: keyset on (rank DESC, type, id); nextCursor is null on the
-- last page. A row edited between two pages may move (its rank changes).
local route = require "lib.route"
local db = require "lib.db"
local json = require "lib.json"
local errors = require "lib.errors"
local cursor = require "lib.cursor"
local projects = require "lib.projects"
local permissions = require "policies.permissions"
local uuid = require "lib.uuid"

local ipairs, type, huge = ipairs, type, math.huge

local r = route.group("/api/v1")

-- ---- SQL -------------------------------------------------------------------

-- One statement per scope, so that each one's prepared (generic) plan is
-- right: the readable projects come first and every hit is looked up from
-- them, so the cost follows what the caller may read, not the table (tasks
-- and comments by their project_id indexes; comments.project_id is kept by
-- the database, migration 0009).
--   project  $1 = a project id (the route has checked that the caller may
--            read it)
--   member   $1 = the caller: the projects they are a member of, and the
--            public ones (policies.permissions.can_read)
--   admin    a global admin reads every project; $1 (the caller) is unused
-- Then $2 query text, $3..$5 which kinds (tasks, comments, projects),
-- $6..$8 cursor (rank, kind, id) or NULL, $9 row count.
local READABLE = {
  project = [[
  readable AS (SELECT p.id FROM projects p WHERE p.id = $1::uuid)]],
  member = [[
  readable AS (
    SELECT m.project_id AS id FROM project_members m WHERE m.user_id = $1::uuid
    UNION
    SELECT p.id FROM projects p WHERE p.visibility = 'public')]],
  admin = [[
  readable AS (SELECT p.id FROM projects p WHERE $1::uuid IS NOT NULL)]],
}

-- A match of a tsvector column against q.query. Scoped searches use
-- ts_match_vq (the function behind @@, same result), which the GIN indexes
-- cannot serve: those hold every project's rows, so a common word would cost
-- in proportion to the whole table (100,000 index entries for one word
-- with 1,000,000 tasks in other projects). Matched row by row within the
-- readable projects, the cost stays with the caller's data. A global admin
-- reads everything, where the GIN index is the right path.
local MATCH = {
  project = { "ts_match_vq(", ", q.query)" },
  member = { "ts_match_vq(", ", q.query)" },
  admin = { "(", " @@ q.query)" },
}

local function search_sql(scope)
  local open, close = MATCH[scope][1], MATCH[scope][2]
  return [[
  WITH q AS (SELECT websearch_to_tsquery('english', $2) AS query),
]] .. READABLE[scope] .. [[,
  hits AS (
    SELECT 'task'::text AS kind, t.id, t.project_id, t.title, ts_rank(t.search, q.query) AS rank
      FROM q, readable rd JOIN tasks t ON t.project_id = rd.id
     WHERE $3::boolean AND ]] .. open .. "t.search" .. close .. [[

    UNION ALL
    SELECT 'comment'::text, c.id, c.project_id, t.title, ts_rank(c.search, q.query)
      FROM q, readable rd JOIN comments c ON c.project_id = rd.id JOIN tasks t ON t.id = c.task_id
     WHERE $4::boolean AND ]] .. open .. "c.search" .. close .. [[

    UNION ALL
    SELECT 'project'::text, p.id, p.id, p.name, ts_rank(p.search, q.query)
      FROM q, readable rd JOIN projects p ON p.id = rd.id
     WHERE $5::boolean AND ]] .. open .. "p.search" .. close .. [[

  ),
  page AS (
    SELECT * FROM hits
     WHERE $6::real IS NULL OR rank < $6::real
        OR (rank = $6::real AND (kind, id) > ($7::text, $8::uuid))
     ORDER BY rank DESC, kind, id
     LIMIT $9
  )
  SELECT pg.kind, pg.id, pg.project_id, pg.title, pg.rank,
         ts_headline('english',
           translate(src.body, '<>' || chr(1) || chr(2) || chr(3) || chr(4), chr(3) || chr(4)),
           q.query,
           'StartSel=' || chr(1) || ', StopSel=' || chr(2) || ', MinWords=15, MaxWords=35')
           AS snippet
    FROM page pg
    CROSS JOIN q
    CROSS JOIN LATERAL (
      SELECT CASE WHEN t.description = '' THEN t.title
                  ELSE t.title || ' — ' || t.description END AS body
        FROM tasks t WHERE pg.kind = 'task' AND t.id = pg.id
      UNION ALL
      SELECT c.content FROM comments c WHERE pg.kind = 'comment' AND c.id = pg.id
      UNION ALL
      SELECT CASE WHEN p.description = '' THEN p.name
                  ELSE p.name || ' — ' || p.description END
        FROM projects p WHERE pg.kind = 'project' AND p.id = pg.id
    ) src
   ORDER BY pg.rank DESC, pg.kind, pg.id]]
end

local SEARCH = {
  project = search_sql("project"),
  member = search_sql("member"),
  admin = search_sql("admin"),
}

-- ---- schemas ---------------------------------------------------------------

local KINDS = { "tasks", "comments", "projects" }

local S = {
  search = { type = "object", required = { "q" }, properties = {
    q = { type = "string", trim = true, minLength = 1, maxLength = 1000,
      description = "websearch syntax: \"a phrase\", -excluded, a or b" },
    type = { type = "array", minItems = 1, items = { type = "string", enum = KINDS },
      description = "comma list of tasks, comments, projects (default: all three)" },
    projectId = { type = "string", format = "uuid" },
    limit = cursor.LIMIT,
    cursor = cursor.CURSOR,
  } },
}

-- ---- helpers ---------------------------------------------------------------

local RESULT_KIND = { task = true, comment = true, project = true }

local function bad_cursor()
  errors.raise(400, "invalid_parameter", "invalid cursor",
    { { field = "cursor", message = "is not a valid cursor" } })
end

local function decode_cursor(s)
  local v = cursor.decode(s, 3)
  local rank, kind, id = v[1], v[2], v[3]
  if type(rank) ~= "number" or rank ~= rank or rank < 0 or rank == huge
      or not RESULT_KIND[kind] or not uuid.valid(id) then
    bad_cursor()
  end
  return v
end

local ESCAPE = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local MARKS = { ["\1"] = "<mark>", ["\2"] = "</mark>", ["\3"] = "&lt;", ["\4"] = "&gt;" }

--- ts_headline output (see the top of the file) as safe HTML.
local function snippet_html(s)
  s = (s or ""):gsub("[&<>\"']", ESCAPE)
  return (s:gsub("[\1-\4]", MARKS))
end

-- A search result in the contract's field order (API.md §7: type first).
local RESULT = json.shape({ "type", "id", "projectId", "title", "snippet", "rank" })

-- ---- routes ----------------------------------------------------------------

r:get("/search", { query = S.search, tags = { "search" },
  summary = "Full-text search over the tasks, comments and projects the caller may read",
  description = "Results are ordered by rank (highest first); `snippet` is HTML with hits in "
    .. "<mark>…</mark> and everything else escaped; a comment's `title` is its task's. "
    .. "`meta.nextCursor` pages on (rank, type, id) and is null on the last page." }, function(req)
  local q, user = req.query, req.user
  if q.projectId then
    local p = projects.load(user, q.projectId)
    if not p or not permissions.can_read(user, p) then
      errors.not_found("project not found")
    end
  end
  local want = {}
  for _, k in ipairs(q.type or KINDS) do
    want[k] = true
  end
  local after = q.cursor and decode_cursor(q.cursor) or {}
  local scope = q.projectId and "project" or user.role == "admin" and "admin" or "member"
  local rows = db.query(SEARCH[scope], q.projectId or user.id, q.q,
    want.tasks == true, want.comments == true, want.projects == true,
    after[1], after[2], after[3], q.limit + 1)
  local page, next_cursor = cursor.page(rows, q.limit, function(row)
    return { row.rank, row.kind, row.id }
  end)
  local data = json.array({})
  for i, row in ipairs(page) do
    data[i] = setmetatable({
      type = row.kind,
      id = row.id,
      projectId = row.project_id,
      title = row.title,
      snippet = snippet_html(row.snippet),
      rank = row.rank,
    }, RESULT)
  end
  return 200, { data = data, meta = { limit = q.limit, nextCursor = next_cursor } }
end)

return r
