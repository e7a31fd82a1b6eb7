-- /api/v1/projects (API.md §3): projects, ownership transfer and members.
-- Who may do what is decided by policies.permissions through lib.projects
-- (404 for a private project the caller may not read, 403 for a role too
-- weak, 409 for writes under an archived project); the Member object and
-- member queries live in lib.members. Every write runs in one transaction
-- and publishes its §8 event inside it (delivered after commit); removing a
-- member also publishes task:updated for each task it leaves unassigned.
local route = require "lib.route"
local db = require "lib.db"
local errors = require "lib.errors"
local events = require "lib.events"
local json = require "lib.json"
local cursor = require "lib.cursor"
local uuid = require "lib.uuid"
local projects = require "lib.projects"
local members = require "lib.members"
local permissions = require "policies.permissions"


local r = route.group("/api/v1")

-- ---- SQL ---------------------------------------------------------------------

local INSERT_PROJECT = [[
  INSERT INTO projects (name, description, visibility, owner_id) VALUES ($1, $2, $3, $4)
  RETURNING id]]

local INSERT_OWNER = [[
  INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')]]

-- The caller's projects, newest first, keyset on (created_at, id). $4 is an
-- ILIKE pattern whose %, _ and \ were escaped in Lua (see contains_pattern).
local LIST_PROJECTS = [[
  SELECT p.id, p.name, p.description, p.visibility, p.status, p.owner_id,
         p.created_at, p.updated_at, m.role AS my_role,
         (SELECT count(*) FROM project_members c WHERE c.project_id = p.id) AS member_count
    FROM project_members m
    JOIN projects p ON p.id = m.project_id
   WHERE m.user_id = $1
     AND ($2::text IS NULL OR p.status = $2)
     AND ($3::text IS NULL OR p.visibility = $3)
     AND ($4::text IS NULL OR p.name ILIKE $4 ESCAPE '\')
     AND ($5::timestamptz IS NULL OR (p.created_at, p.id) < ($5::timestamptz, $6::uuid))
   ORDER BY p.created_at DESC, p.id DESC
   LIMIT $7]]

-- Fields a PATCH leaves out arrive as NULL; none of them is nullable.
local UPDATE_PROJECT = [[
  UPDATE projects SET
    name = coalesce($2, name),
    description = coalesce($3, description),
    visibility = coalesce($4, visibility),
    status = coalesce($5, status),
    updated_at = now()
  WHERE id = $1]]

local DELETE_PROJECT = "DELETE FROM projects WHERE id = $1"

local DEMOTE_OWNER = [[
  UPDATE project_members SET role = 'admin' WHERE project_id = $1 AND role = 'owner'
  RETURNING user_id]]

local SET_OWNER = "UPDATE projects SET owner_id = $2, updated_at = now() WHERE id = $1"

-- ---- schemas -----------------------------------------------------------------

local NAME = { type = "string", minLength = 1, maxLength = 200, trim = true }
local DESCRIPTION = { type = "string", maxLength = 10000 }
local VISIBILITY = { type = "string", enum = { "private", "public" } }
local STATUS = { type = "string", enum = { "active", "archived" } }
local MEMBER_ROLE = { type = "string", enum = { "admin", "member", "viewer" } }
local USER_ID = { type = "string", format = "uuid" }

local S = {
  create = { type = "object", required = { "name" }, properties = {
    name = NAME,
    description = { type = "string", maxLength = 10000, default = "" },
    visibility = { type = "string", enum = { "private", "public" }, default = "private" },
  } },
  update = { type = "object", properties = {
    name = NAME, description = DESCRIPTION, visibility = VISIBILITY, status = STATUS,
  } },
  list = { type = "object", properties = {
    status = STATUS,
    visibility = VISIBILITY,
    q = { type = "string", maxLength = 200, trim = true,
      description = "name contains (case-insensitive; % and _ match themselves)" },
    limit = cursor.LIMIT,
    cursor = cursor.CURSOR,
  } },
  transfer = { type = "object", required = { "userId" }, properties = { userId = USER_ID } },
  members = { type = "object", properties = { limit = cursor.LIMIT, cursor = cursor.CURSOR } },
  add_member = { type = "object", properties = {
    userId = USER_ID,
    email = { type = "string", format = "email", maxLength = 254, trim = true, lower = true },
    role = { type = "string", enum = { "admin", "member", "viewer" }, default = "member" },
  } },
  change_member = { type = "object", required = { "role" }, properties = { role = MEMBER_ROLE } },
}

-- ---- helpers -----------------------------------------------------------------

local function list_answer(items, limit, next_cursor)
  return 200, { data = json.array(items), meta = { limit = limit, nextCursor = next_cursor } }
end

-- An ILIKE pattern for "contains `s` literally".
local function contains_pattern(s)
  return "%" .. s:gsub("[\\%%_]", "\\%0") .. "%"
end

local function project_id_or_404(id)
  if not uuid.valid(id) then
    errors.not_found("project not found")
  end
  return id
end

-- Loads the project for a write, inside db.tx: the first read locks the
-- project row (FOR UPDATE), so updates, member writes, transfers and deletes
-- of one project run one after the other; the second read is a new statement,
-- so under READ COMMITTED it sees what the writer before us committed
-- (including a change of the caller's own role). Raises 404 if the caller
-- may not read it; permission for the action itself is the caller's job.
local function load_locked(user, id)
  if not projects.load(user, id, true) then
    errors.not_found("project not found")
  end
  local p = projects.load(user, id)
  if not p or not permissions.can_read(user, p) then
    errors.not_found("project not found")
  end
  return p
end

-- The membership named in the path, locked; 404 if there is none.
local function target_member(p, user_id)
  local m = uuid.valid(user_id) and members.get(p.id, user_id, true)
  if not m then
    errors.not_found("member not found")
  end
  return m
end

local function room(project_id)
  return "project:" .. project_id
end

-- ---- projects --------------------------------------------------------------

r:post("/projects", { body = S.create, status = 201, tags = { "projects" },
  summary = "Create a project; the caller becomes its owner" }, function(req)
  local b, user = req.body, req.user
  local project = db.tx(function()
    local rows, msg, state = db.try(INSERT_PROJECT, b.name, b.description, b.visibility, user.id)
    if not rows then
      if state == db.FOREIGN_KEY_VIOLATION then
        errors.unauthorized("user no longer exists")
      end
      error("create project: insert failed: " .. tostring(msg), 0)
    end
    local id = rows[1].id
    db.query(INSERT_OWNER, id, user.id)
    return projects.load(user, id)
  end)
  return 201, { data = projects.public(project) },
    { Location = "/api/v1/projects/" .. project.id }
end)

r:get("/projects", { query = S.list, tags = { "projects" },
  summary = "The caller's projects, newest first" }, function(req)
  local q, limit = req.query, req.query.limit
  local after_time, after_id = cursor.decode_time_id(q.cursor)
  local pattern = nil
  if q.q ~= nil and q.q ~= "" then
    pattern = contains_pattern(q.q)
  end
  local rows = db.query(LIST_PROJECTS, req.user.id, q.status, q.visibility, pattern,
    after_time, after_id, limit + 1)
  local page, next_cursor = cursor.page(rows, limit, function(row)
    return { row.created_at, row.id }
  end)
  local items = {}
  for i, row in ipairs(page) do
    items[i] = projects.public(row)
  end
  return list_answer(items, limit, next_cursor)
end)

r:get("/projects/:id", { tags = { "projects" }, summary = "One project" }, function(req)
  local p = projects.get(req.user, req.params.id, "project.read")
  return 200, { data = projects.public(p) }
end)

r:patch("/projects/:id", { body = S.update, tags = { "projects" },
  summary = "Change name, description, visibility or status (archive / reactivate)" }, function(req)
  local b, user = req.body, req.user
  project_id_or_404(req.params.id)
  local project = db.tx(function()
    local p = projects.authorize(user, "project.update", load_locked(user, req.params.id))
    if b.name == nil and b.description == nil and b.visibility == nil and b.status == nil then
      return p -- nothing named, nothing touched
    end
    db.query(UPDATE_PROJECT, p.id, b.name, b.description, b.visibility, b.status)
    local updated = projects.load(user, p.id)
    events.publish(room(p.id), "project:updated", { project = projects.broadcast(updated) })
    return updated
  end)
  return 200, { data = projects.public(project) }
end)

r:delete("/projects/:id", { status = 204, tags = { "projects" },
  summary = "Delete a project with its tasks, comments and memberships" }, function(req)
  project_id_or_404(req.params.id)
  db.tx(function()
    local p = projects.authorize(req.user, "project.delete", load_locked(req.user, req.params.id))
    db.query(DELETE_PROJECT, p.id)
    events.publish(room(p.id), "project:deleted", { projectId = p.id })
  end)
  return 204
end)

r:post("/projects/:id/transfer", { body = S.transfer, tags = { "projects" },
  summary = "Make another member the owner; the old owner becomes an admin" }, function(req)
  local user = req.user
  project_id_or_404(req.params.id)
  local project = db.tx(function()
    local p = projects.authorize(user, "project.transfer", load_locked(user, req.params.id))
    local target = members.get(p.id, req.body.userId, true)
    if not target then
      errors.field("userId", "is not a member of this project")
    end
    if target.role == "owner" then
      return p -- already the owner: nothing changes
    end
    local old = db.one(DEMOTE_OWNER, p.id)
    local new = members.set_role(p.id, target.user_id, "owner")
    db.query(SET_OWNER, p.id, target.user_id)
    if old then
      events.publish(room(p.id), "member:updated",
        { member = members.public(members.get(p.id, old.user_id)) })
    end
    events.publish(room(p.id), "member:updated", { member = members.public(new) })
    local updated = projects.load(user, p.id)
    events.publish(room(p.id), "project:updated", { project = projects.broadcast(updated) })
    return updated
  end)
  return 200, { data = projects.public(project) }
end)

-- ---- members -----------------------------------------------------------------

r:get("/projects/:id/members", { query = S.members, tags = { "members" },
  summary = "The project's members, in the order they joined" }, function(req)
  local p = projects.get(req.user, req.params.id, "member.list")
  local limit = req.query.limit
  local after_time, after_user = cursor.decode_time_id(req.query.cursor)
  local rows = members.page(p.id, after_time, after_user, limit + 1)
  local page, next_cursor = cursor.page(rows, limit, function(row)
    return { row.joined_at, row.user_id }
  end)
  local items = {}
  for i, row in ipairs(page) do
    items[i] = members.public(row)
  end
  return list_answer(items, limit, next_cursor)
end)

r:post("/projects/:id/members", { body = S.add_member, status = 201, tags = { "members" },
  summary = "Add a user (by userId or email) with a role below the caller's" }, function(req)
  local b, user = req.body, req.user
  if (b.userId == nil) == (b.email == nil) then
    local msg = "exactly one of userId and email is required"
    errors.validation({ { field = "userId", message = msg }, { field = "email", message = msg } })
  end
  project_id_or_404(req.params.id)
  local member = db.tx(function()
    local p = projects.authorize(user, "member.add", load_locked(user, req.params.id),
      { role = b.role })
    local user_id = members.find_user(b.userId, b.email)
    if not user_id then
      errors.not_found("user not found")
    end
    local row = members.add(p.id, user_id, b.role)
    if not row then
      errors.conflict("the user is already a member of this project", "already_member")
    end
    local m = members.public(row)
    events.publish(room(p.id), "member:added", { member = m })
    return m
  end)
  return 201, { data = member }
end)

r:patch("/projects/:id/members/:userId", { body = S.change_member, tags = { "members" },
  summary = "Change a member's role (to or from admin: owner only)" }, function(req)
  local user, role = req.user, req.body.role
  project_id_or_404(req.params.id)
  local member = db.tx(function()
    local p = load_locked(user, req.params.id)
    local target = target_member(p, req.params.userId)
    if target.role == "owner" then
      errors.conflict("the owner's role changes only by transferring ownership")
    end
    projects.authorize(user, "member.change", p, { from = target.role, to = role })
    if target.role == role then
      return members.public(target)
    end
    local m = members.public(members.set_role(p.id, target.user_id, role))
    events.publish(room(p.id), "member:updated", { member = m })
    return m
  end)
  return 200, { data = member }
end)

r:delete("/projects/:id/members/:userId", { status = 204, tags = { "members" },
  summary = "Remove a member, or leave; their tasks stay, unassigned" }, function(req)
  local user = req.user
  project_id_or_404(req.params.id)
  db.tx(function()
    local p = load_locked(user, req.params.id)
    local target = target_member(p, req.params.userId)
    if target.role == "owner" then
      errors.conflict("the owner cannot be removed; transfer ownership first")
    end
    projects.authorize(user, "member.remove", p, { role = target.role, user_id = target.user_id })
    for _, task in ipairs(members.remove(p.id, target.user_id)) do
      events.publish(room(p.id), "task:updated", { task = task, changes = json.array({ "assigneeId" }) })
    end
    events.publish(room(p.id), "member:removed", { userId = target.user_id, projectId = p.id })
  end)
  return 204
end)

return r
