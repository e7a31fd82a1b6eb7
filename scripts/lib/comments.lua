-- Comments as routes see them (API.md §5): one query loads a comment (or a
-- task) together with its project's visibility and status and the caller's
-- role in it, so the permission check in lib.projects costs no extra round
-- trip; mention resolution; and the Comment object. Routes decide what to
-- do; this module only loads, resolves and shapes.
local db = require "lib.db"
local json = require "lib.json"
local tasks = require "lib.tasks"
local uuid = require "lib.uuid"

local ipairs, type = ipairs, type

local M = {}

-- At most this many `@<email>` mentions are taken from one content.
local MAX_CONTENT_EMAILS = 100

-- Task columns (prefixed t_) and project access columns shared by both loaders.
local TASK_AND_ACCESS = [[
         t.id AS t_id, t.project_id AS t_project_id, t.title AS t_title,
         t.description AS t_description, t.status AS t_status, t.priority AS t_priority,
         t.assignee_id AS t_assignee_id, t.created_by AS t_created_by, t.due_date AS t_due_date,
         t.completed_at AS t_completed_at, t.tags AS t_tags, t.version AS t_version,
         t.created_at AS t_created_at, t.updated_at AS t_updated_at,
         p.visibility AS p_visibility, p.status AS p_status, m.role AS my_role]]

-- A comment with its author, its task and the caller's access ($2) to the
-- task's project.
local SELECT_COMMENT = [[
  SELECT c.id, c.task_id, c.user_id, c.content, c.mentions, c.created_at, c.updated_at,
         u.name AS author_name, u.avatar_url AS author_avatar_url,]] .. TASK_AND_ACCESS .. [[

    FROM comments c
    JOIN users u ON u.id = c.user_id
    JOIN tasks t ON t.id = c.task_id
    JOIN projects p ON p.id = t.project_id
    LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2
   WHERE c.id = $1]]

-- Writes lock the comment row and share-lock the project, so the project
-- cannot be archived or deleted under the change.
local SELECT_COMMENT_LOCKED = SELECT_COMMENT .. " FOR UPDATE OF c FOR SHARE OF p"

local SELECT_TASK = [[
  SELECT]] .. TASK_AND_ACCESS .. [[

    FROM tasks t
    JOIN projects p ON p.id = t.project_id
    LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2
   WHERE t.id = $1]]

local SELECT_TASK_LOCKED = SELECT_TASK .. " FOR SHARE OF p"

-- Candidate mentions ($2 ids, $3 and $4 lower-cased emails) of project $1,
-- each tagged with where it came from. Ids keep every user who may read the
-- project (anyone on a public project, members and global admins on a
-- private one); emails match members only.
local RESOLVE_MENTIONS = [[
  SELECT u.id, 'id' AS src
    FROM users u
   WHERE u.id = ANY($2::uuid[])
     AND (u.role = 'admin'
          OR EXISTS (SELECT 1 FROM projects p WHERE p.id = $1 AND p.visibility = 'public')
          OR EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = $1 AND m.user_id = u.id))
  UNION ALL
  SELECT u.id, 'new'
    FROM project_members m JOIN users u ON u.id = m.user_id
   WHERE m.project_id = $1 AND lower(u.email) = ANY($3::text[])
  UNION ALL
  SELECT u.id, 'old'
    FROM project_members m JOIN users u ON u.id = m.user_id
   WHERE m.project_id = $1 AND lower(u.email) = ANY($4::text[])]]

-- Inserts a comment and answers it in the loader's column names.
M.INSERT = [[
  WITH c AS (
    INSERT INTO comments (task_id, user_id, content, mentions)
    VALUES ($1, $2, $3, $4::uuid[])
    RETURNING id, task_id, user_id, content, mentions, created_at, updated_at)
  SELECT c.*, u.name AS author_name, u.avatar_url AS author_avatar_url
    FROM c JOIN users u ON u.id = c.user_id]]

M.UPDATE = [[
  WITH c AS (
    UPDATE comments SET content = $2, mentions = $3::uuid[], updated_at = now()
     WHERE id = $1
    RETURNING id, task_id, user_id, content, mentions, created_at, updated_at)
  SELECT c.*, u.name AS author_name, u.avatar_url AS author_avatar_url
    FROM c JOIN users u ON u.id = c.user_id]]

-- A page of a task's comments, oldest first; $2/$3 the cursor (or NULL).
-- No cursor starts before every row ('-infinity'): one range condition on
-- comments_task_idx either way, so the prepared generic plan is an index
-- range scan (a `$2 IS NULL OR ...` filter would read from the first
-- comment on every page).
M.LIST = [[
  SELECT c.id, c.task_id, c.user_id, c.content, c.mentions, c.created_at, c.updated_at,
         u.name AS author_name, u.avatar_url AS author_avatar_url
    FROM comments c
    JOIN users u ON u.id = c.user_id
   WHERE c.task_id = $1
     AND (c.created_at, c.id) > (COALESCE($2::timestamptz, '-infinity'),
                                 COALESCE($3::uuid, '00000000-0000-0000-0000-000000000000'))
   ORDER BY c.created_at, c.id
   LIMIT $4]]

M.DELETE = "DELETE FROM comments WHERE id = $1"

-- ---- shapes -----------------------------------------------------------------

local SHAPE = json.shape({ "id", "taskId", "userId", "author", "content", "mentions", "createdAt",
  "updatedAt" })
local AUTHOR = json.shape({ "id", "name", "avatarUrl" })

--- The Comment object of API.md §5 from a row with the comment columns and
--- author_name, author_avatar_url.
function M.public(row)
  local mentions = json.array({})
  for i, id in ipairs(row.mentions or {}) do
    mentions[i] = id
  end
  return setmetatable({
    id = row.id,
    taskId = row.task_id,
    userId = row.user_id,
    author = setmetatable({
      id = row.user_id,
      name = row.author_name,
      avatarUrl = json.nullable(row.author_avatar_url),
    }, AUTHOR),
    content = row.content,
    mentions = mentions,
    createdAt = row.created_at,
    updatedAt = row.updated_at,
  }, SHAPE)
end

--- The Task object of API.md §4 from a loader row (t_ columns), as the
--- notification policy expects it.
function M.task(row)
  local tags = json.array({})
  for i, tag in ipairs(row.t_tags or {}) do
    tags[i] = tag
  end
  return setmetatable({
    id = row.t_id,
    projectId = row.t_project_id,
    title = row.t_title,
    description = row.t_description,
    status = row.t_status,
    priority = row.t_priority,
    assigneeId = json.nullable(row.t_assignee_id),
    createdBy = row.t_created_by,
    dueDate = json.nullable(row.t_due_date),
    completedAt = json.nullable(row.t_completed_at),
    tags = tags,
    version = row.t_version,
    createdAt = row.t_created_at,
    updatedAt = row.t_updated_at,
  }, tasks.SHAPE)
end

--- The project as policies.permissions needs it (id, visibility, status,
--- my_role), from a loader row.
function M.project(row)
  return { id = row.t_project_id, visibility = row.p_visibility, status = row.p_status,
    my_role = row.my_role }
end

-- ---- loaders ----------------------------------------------------------------

--- Loads comment `id` with its author, task and `user`'s access to the
--- project; nil when there is no such comment or `id` is not a UUID.
--- `lock` = true (inside a transaction) locks the comment and share-locks
--- the project.
function M.load(user, id, lock)
  if not uuid.valid(id) then
    return nil
  end
  -- (not LOAD[lock == true]: Lua 5.4.4 miscompiles indexing an upvalue by a comparison)
  return db.one(lock and SELECT_COMMENT_LOCKED or SELECT_COMMENT, id, user.id)
end

--- Loads task `id` with `user`'s access to its project; nil when missing or
--- not a UUID. `lock` = true share-locks the project (the comment's
--- foreign key keeps the task).
function M.load_task(user, id, lock)
  if not uuid.valid(id) then
    return nil
  end
  return db.one(lock and SELECT_TASK_LOCKED or SELECT_TASK, id, user.id)
end

-- ---- mentions ---------------------------------------------------------------

local LOWER = {}
for c = 65, 90 do
  LOWER[string.char(c)] = string.char(c + 32)
end

-- Characters of an e-mail address as lib.schema accepts them.
local EMAIL_CHAR = "[%w.!#$%%&'*+/=?^_`{|}~-]"
local MENTION = "()@(" .. EMAIL_CHAR .. "+@[%w.-]+)"

--- The distinct lower-cased addresses of every `@<email>` in `content`, in
--- order of appearance (at most MAX_CONTENT_EMAILS). An `@` glued to a
--- preceding address character does not start a mention.
function M.content_emails(content)
  local out, seen = {}, {}
  if type(content) ~= "string" then
    return out
  end
  for pos, addr in content:gmatch(MENTION) do
    local before = pos > 1 and content:sub(pos - 1, pos - 1) or ""
    if before == "" or not before:find("^" .. EMAIL_CHAR .. "$") then
      -- trailing sentence punctuation is not part of the address
      addr = addr:gsub("[.-]+$", ""):gsub("[A-Z]", LOWER)
      if addr:find("^[^@]+@[%w-]+%.[%w.-]+$") and not seen[addr] then
        seen[addr] = true
        out[#out + 1] = addr
        if #out >= MAX_CONTENT_EMAILS then
          break
        end
      end
    end
  end
  return out
end

local function add_unique(list, seen, id)
  if not seen[id] then
    seen[id] = true
    list[#list + 1] = id
  end
end

--- Resolves the mentions of a new comment on project `project_id`: the
--- union of `ids` (validated UUIDs, any case) and the members whose address
--- is `@`-mentioned in `content`; users who may not read the project and
--- unknown ids are dropped. Returns the list of user ids (request order,
--- then content order). One query, none when there is nothing to resolve.
function M.resolve(project_id, ids, content)
  local emails = M.content_emails(content)
  local wanted = {}
  for i, id in ipairs(ids or {}) do
    wanted[i] = id:lower()
  end
  if #wanted == 0 and #emails == 0 then
    return {}
  end
  local rows = db.query(RESOLVE_MENTIONS, project_id, wanted, emails, {})
  local ok = {}
  for _, r in ipairs(rows) do
    ok[r.id] = true
  end
  local out, seen = {}, {}
  for _, id in ipairs(wanted) do
    if ok[id] then
      add_unique(out, seen, id)
    end
  end
  for _, r in ipairs(rows) do
    if r.src == "new" then
      add_unique(out, seen, r.id)
    end
  end
  return out
end

--- Resolves the mentions of an edited comment (a loader row `old`) whose
--- content becomes `content`. Mentions that came from an address in the old
--- content follow the content (removing the address removes the mention);
--- the others (given as ids) stay while their user may still read the
--- project. Returns the new list and the ids it adds to the old one.
function M.resolve_edit(old, content)
  local old_ids = {}
  for i, id in ipairs(old.mentions or {}) do
    old_ids[i] = id
  end
  local old_emails = M.content_emails(old.content)
  local new_emails = M.content_emails(content)
  local rows = {}
  if #old_ids > 0 or #new_emails > 0 then
    rows = db.query(RESOLVE_MENTIONS, old.t_project_id, old_ids, new_emails, old_emails)
  end
  local readable, from_old_content, was = {}, {}, {}
  for _, r in ipairs(rows) do
    if r.src == "id" then
      readable[r.id] = true
    elseif r.src == "old" then
      from_old_content[r.id] = true
    end
  end
  local out, seen = {}, {}
  for _, id in ipairs(old_ids) do
    was[id] = true
    if readable[id] and not from_old_content[id] then
      add_unique(out, seen, id)
    end
  end
  for _, r in ipairs(rows) do
    if r.src == "new" then
      add_unique(out, seen, r.id)
    end
  end
  local added = {}
  for _, id in ipairs(out) do
    if not was[id] then
      added[#added + 1] = id
    end
  end
  return out, added
end

return M
