-- Projects as routes see them: one query loads a project together with the
-- caller's role and the member count, and `authorize` turns the answer of
-- policies.permissions into 404 / 403 / 409 in the contract's shape.
local db = require "lib.db"
local errors = require "lib.errors"
local json = require "lib.json"
local permissions = require "policies.permissions"
local uuid = require "lib.uuid"

local M = {}

-- The caller's role comes from a join, so permission checks cost no extra
-- round trip.
M.SELECT = [[
  SELECT p.id, p.name, p.description, p.visibility, p.status, p.owner_id,
         p.created_at, p.updated_at, m.role AS my_role,
         (SELECT count(*) FROM project_members c WHERE c.project_id = p.id) AS member_count
    FROM projects p
    LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2]]

local SHAPE = json.shape({ "id", "name", "description", "visibility", "status", "ownerId", "role",
  "memberCount", "createdAt", "updatedAt" })

--- The Project object of API.md §3.
function M.public(row)
  return setmetatable({
    id = row.id,
    name = row.name,
    description = row.description,
    visibility = row.visibility,
    status = row.status,
    ownerId = row.owner_id,
    role = json.nullable(row.my_role),
    memberCount = row.member_count or 0,
    createdAt = row.created_at,
    updatedAt = row.updated_at,
  }, SHAPE)
end

--- The Project object for an event that every subscriber of the room gets:
--- `role` is each viewer's own, so it is null here (clients read theirs
--- from GET /projects/:id).
function M.broadcast(row)
  local p = M.public(row)
  p.role = json.null
  return p
end

--- Loads project `id` for `user`; nil when it does not exist or is not a UUID.
--- `lock` = true adds FOR UPDATE OF p (inside a transaction).
function M.load(user, id, lock)
  if not uuid.valid(id) then
    return nil
  end
  return db.one(M.SELECT .. " WHERE p.id = $1" .. (lock and " FOR UPDATE OF p" or ""), id, user.id)
end

--- Raises the right error unless `user` may do `action` on `project`
--- (a row from M.load, or nil for a missing one). Returns the project.
function M.authorize(user, action, project, target)
  if project == nil then
    errors.not_found("project not found")
  end
  local ok, why = permissions.can(user, action, project, target)
  if not ok then
    if why == "not_found" then
      errors.not_found("project not found")
    end
    errors.forbidden("your role in this project does not allow this")
  end
  if project.status == "archived" and not permissions.ARCHIVE_EXEMPT[action] then
    errors.conflict("the project is archived; reactivate it first")
  end
  return project
end

--- Loads and authorizes in one step.
function M.get(user, id, action, target, lock)
  return M.authorize(user, action, M.load(user, id, lock), target)
end

return M
