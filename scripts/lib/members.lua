-- Project members (API.md §3): the Member object and the queries the
-- member routes share (Task objects come from lib.tasks). Permission checks are left to lib.projects; every
-- function here that writes expects to run inside db.tx.
local db = require "lib.db"
local json = require "lib.json"
local tasks = require "lib.tasks"

local M = {}

-- A membership together with the user's name and email.
local SELECT = [[
  SELECT m.project_id, m.user_id, m.role, m.joined_at, u.name, u.email
    FROM project_members m
    JOIN users u ON u.id = m.user_id]]

local GET = SELECT .. " WHERE m.project_id = $1 AND m.user_id = $2"
local GET_LOCKED = GET .. " FOR UPDATE OF m"

-- Keyset page in (joined_at, user_id) order; $2/$3 are the last row seen
-- (NULL: from the start, '-infinity'). One range condition either way, so
-- the prepared generic plan is a range scan of project_members_joined_idx.
local PAGE = SELECT .. [[
   WHERE m.project_id = $1
     AND (m.joined_at, m.user_id) > (COALESCE($2::timestamptz, '-infinity'),
                                     COALESCE($3::uuid, '00000000-0000-0000-0000-000000000000'))
   ORDER BY m.joined_at, m.user_id
   LIMIT $4]]

local INSERT = [[
  WITH ins AS (
    INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)
    ON CONFLICT (project_id, user_id) DO NOTHING
    RETURNING project_id, user_id, role, joined_at)
  SELECT ins.project_id, ins.user_id, ins.role, ins.joined_at, u.name, u.email
    FROM ins JOIN users u ON u.id = ins.user_id]]

local SET_ROLE = [[
  WITH upd AS (
    UPDATE project_members SET role = $3 WHERE project_id = $1 AND user_id = $2
    RETURNING project_id, user_id, role, joined_at)
  SELECT upd.project_id, upd.user_id, upd.role, upd.joined_at, u.name, u.email
    FROM upd JOIN users u ON u.id = upd.user_id]]

local UNASSIGN_TASKS = [[
  UPDATE tasks AS t SET assignee_id = NULL, version = t.version + 1, updated_at = now()
   WHERE t.project_id = $1 AND t.assignee_id = $2
  RETURNING ]] .. tasks.COLUMNS

local DELETE = "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2"

local USER_BY_ID = "SELECT id FROM users WHERE id = $1"
local USER_BY_EMAIL = "SELECT id FROM users WHERE email = $1"

local SHAPE = json.shape({ "userId", "name", "email", "role", "joinedAt" })

--- The Member object of API.md §3 from a row of these queries.
function M.public(row)
  return setmetatable({
    userId = row.user_id,
    name = row.name,
    email = row.email,
    role = row.role,
    joinedAt = row.joined_at,
  }, SHAPE)
end

--- The membership of `user_id` in `project_id`, or nil. `lock` = true locks
--- the membership row (FOR UPDATE, inside a transaction). Both ids must be
--- valid UUIDs (the caller checks path parameters with lib.uuid).
function M.get(project_id, user_id, lock)
  return db.one(lock and GET_LOCKED or GET, project_id, user_id)
end

--- Up to `limit` memberships after (`after_joined`, `after_user`) (both nil
--- for the first page), oldest first.
function M.page(project_id, after_joined, after_user, limit)
  return (db.query(PAGE, project_id, after_joined, after_user, limit))
end

--- Adds `user_id` with `role`; returns the new membership, or nil when the
--- user is already a member.
function M.add(project_id, user_id, role)
  return db.one(INSERT, project_id, user_id, role)
end

--- Sets the role of an existing member; returns the membership (nil if it
--- is gone).
function M.set_role(project_id, user_id, role)
  return db.one(SET_ROLE, project_id, user_id, role)
end

--- Removes a member. Their tasks in the project stay but lose their
--- assignee (each such task's version grows by one). Returns the tasks
--- unassigned, as Task objects (lib.tasks.public), for their events.
function M.remove(project_id, user_id)
  local rows = db.query(UNASSIGN_TASKS, project_id, user_id)
  db.query(DELETE, project_id, user_id)
  local out = {}
  for i, row in ipairs(rows) do
    out[i] = tasks.public(row)
  end
  return out
end

--- The id of the user with `id` or with `email` (lower-cased), or nil.
function M.find_user(id, email)
  local row
  if id ~= nil then
    row = db.one(USER_BY_ID, id)
  else
    row = db.one(USER_BY_EMAIL, email)
  end
  return row and row.id
end

return M
