-- Who may do what on a project (API.md §3): the one place that answers
-- "may user U do action A on project P". Routes load the project together
-- with the caller's membership in one query (lib.projects) and ask here.
--
-- Roles, strongest first: owner > admin > member > viewer. A global admin
-- (users.role = 'admin') may do anything. A private project the caller may
-- not read is reported as not found, never as forbidden.
local M = {}

M.RANK = { viewer = 1, member = 2, admin = 3, owner = 4 }

local RANK = M.RANK

--- The rank the caller acts with: a global admin acts as an owner.
local function acting_rank(user, project)
  if user.role == "admin" then
    return RANK.owner + 1
  end
  return RANK[project.my_role] or 0
end

--- True when the caller may read the project (and its tasks, comments, members).
function M.can_read(user, project)
  return user.role == "admin" or project.my_role ~= nil or project.visibility == "public"
end

-- Actions that need a minimum role and nothing else.
local MIN_ROLE = {
  ["project.update"] = "admin",
  ["project.delete"] = "owner",
  ["project.transfer"] = "owner",
  ["member.list"] = nil,
  ["task.create"] = "member",
  ["task.update"] = "member",
  ["comment.create"] = "member",
}

--- May `user` do `action` on `project` (a row with my_role, visibility,
--- status)? `target` carries what some actions need:
---   task.delete      target.created_by
---   comment.update   target.user_id (the author)
---   comment.delete   target.user_id
---   member.add       target.role (the role given)
---   member.change    target.from, target.to (roles)
---   member.remove    target.role, target.user_id
--- Returns true, or false and the reason ("not_found" when the caller may
--- not even read the project, else "forbidden").
function M.can(user, action, project, target)
  if not M.can_read(user, project) then
    return false, "not_found"
  end
  if user.role == "admin" then
    return true -- a global admin may do anything (API.md §3)
  end
  local rank = acting_rank(user, project)
  if action == "project.read" or action == "task.read" or action == "comment.read"
      or action == "member.list" then
    return true
  end
  local min = MIN_ROLE[action]
  if min then
    return rank >= RANK[min] or false, "forbidden"
  end
  if action == "task.delete" then
    if rank >= RANK.admin then
      return true
    end
    return (rank >= RANK.member and target.created_by == user.id) or false, "forbidden"
  elseif action == "comment.update" then
    return (target.user_id == user.id and rank >= RANK.viewer) or false, "forbidden"
  elseif action == "comment.delete" then
    if target.user_id == user.id or rank >= RANK.admin then
      return true
    end
    return false, "forbidden"
  elseif action == "member.add" then
    -- admin and up add members below their own role; only the owner makes admins.
    if rank < RANK.admin then
      return false, "forbidden"
    end
    return RANK[target.role] < rank or false, "forbidden"
  elseif action == "member.change" then
    if rank < RANK.admin then
      return false, "forbidden"
    end
    return (RANK[target.from] < rank and RANK[target.to] < rank) or false, "forbidden"
  elseif action == "member.remove" then
    if target.user_id == user.id then
      return true -- leaving (the owner is refused elsewhere: 409)
    end
    if rank < RANK.admin then
      return false, "forbidden"
    end
    return RANK[target.role] < rank or false, "forbidden"
  end
  error("permissions.can: unknown action '" .. tostring(action) .. "'", 2)
end

--- Actions that write under a project; an archived project refuses them
--- (409) except updating (e.g. reactivating) and deleting the project.
M.ARCHIVE_EXEMPT = { ["project.update"] = true, ["project.delete"] = true,
  ["project.read"] = true, ["task.read"] = true, ["comment.read"] = true, ["member.list"] = true }

return M
