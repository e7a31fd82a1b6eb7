-- The whole role matrix of API.md §3 against a live server, one `it` per
-- (caller, action) so a failure names its cell. Callers: the project's
-- owner, an admin, a member, a viewer, a non-member of a private project, a
-- non-member of a public project, and a global admin who is not a member.
-- Every cell gets a project of its own, all built straight in the database
-- by one statement in setup (the users are registered once), holding, besides the callers, a second admin,
-- member and viewer to act on, so "below / at / above the caller's own
-- role" are all covered. Expected answers are exact statuses and codes.
local h = require "spec.integration.helper"
local P = require "spec.integration.support.proj"

local call = P.call

local CALLERS = { "owner", "admin", "member", "viewer", "outsider (private)", "outsider (public)",
  "global admin" }

-- Answers in CALLERS order.
local MATRIX = {
  { "read the project", { 200, 200, 200, 200, 404, 200, 200 }, function(c)
    return call("GET", "/projects/" .. c.id, c.token)
  end },
  { "list the members", { 200, 200, 200, 200, 404, 200, 200 }, function(c)
    return call("GET", "/projects/" .. c.id .. "/members", c.token)
  end },
  { "update the project", { 200, 200, 403, 403, 404, 403, 200 }, function(c)
    return call("PATCH", "/projects/" .. c.id, c.token, { name = "Renamed", visibility = "public" })
  end },
  { "archive the project", { 200, 200, 403, 403, 404, 403, 200 }, function(c)
    return call("PATCH", "/projects/" .. c.id, c.token, { status = "archived" })
  end },
  { "delete the project", { 204, 403, 403, 403, 404, 403, 204 }, function(c)
    return call("DELETE", "/projects/" .. c.id, c.token)
  end },
  { "transfer ownership to a member", { 200, 403, 403, 403, 404, 403, 200 }, function(c)
    return call("POST", "/projects/" .. c.id .. "/transfer", c.token, { userId = c.u.member2.id })
  end },
  { "add a user as member", { 201, 201, 403, 403, 404, 403, 201 }, function(c)
    return call("POST", "/projects/" .. c.id .. "/members", c.token, { userId = c.u.newcomer.id })
  end },
  { "add a user as viewer", { 201, 201, 403, 403, 404, 403, 201 }, function(c)
    return call("POST", "/projects/" .. c.id .. "/members", c.token,
      { email = c.u.newcomer.email, role = "viewer" })
  end },
  { "add a user as admin", { 201, 403, 403, 403, 404, 403, 201 }, function(c)
    return call("POST", "/projects/" .. c.id .. "/members", c.token,
      { userId = c.u.newcomer.id, role = "admin" })
  end },
  { "change a member to viewer", { 200, 200, 403, 403, 404, 403, 200 }, function(c)
    return call("PATCH", "/projects/" .. c.id .. "/members/" .. c.u.member2.id, c.token, { role = "viewer" })
  end },
  { "change a viewer to member", { 200, 200, 403, 403, 404, 403, 200 }, function(c)
    return call("PATCH", "/projects/" .. c.id .. "/members/" .. c.u.viewer2.id, c.token, { role = "member" })
  end },
  { "change a member to admin", { 200, 403, 403, 403, 404, 403, 200 }, function(c)
    return call("PATCH", "/projects/" .. c.id .. "/members/" .. c.u.member2.id, c.token, { role = "admin" })
  end },
  { "change an admin to member", { 200, 403, 403, 403, 404, 403, 200 }, function(c)
    return call("PATCH", "/projects/" .. c.id .. "/members/" .. c.u.admin2.id, c.token, { role = "member" })
  end },
  { "change the owner's role", { 409, 409, 409, 409, 404, 409, 409 }, function(c)
    return call("PATCH", "/projects/" .. c.id .. "/members/" .. c.u.owner.id, c.token, { role = "admin" })
  end },
  { "remove a viewer", { 204, 204, 403, 403, 404, 403, 204 }, function(c)
    return call("DELETE", "/projects/" .. c.id .. "/members/" .. c.u.viewer2.id, c.token)
  end },
  { "remove a member", { 204, 204, 403, 403, 404, 403, 204 }, function(c)
    return call("DELETE", "/projects/" .. c.id .. "/members/" .. c.u.member2.id, c.token)
  end },
  { "remove an admin", { 204, 403, 403, 403, 404, 403, 204 }, function(c)
    return call("DELETE", "/projects/" .. c.id .. "/members/" .. c.u.admin2.id, c.token)
  end },
  { "remove the owner", { 409, 409, 409, 409, 404, 409, 409 }, function(c)
    return call("DELETE", "/projects/" .. c.id .. "/members/" .. c.u.owner.id, c.token)
  end },
  -- leaving: the owner may not (409); a non-member has no membership (404)
  { "leave", { 409, 204, 204, 204, 404, 404, 404 }, function(c)
    return call("DELETE", "/projects/" .. c.id .. "/members/" .. c.me.id, c.token)
  end },
  { "create a task", { 201, 201, 201, 403, 404, 403, 201 }, function(c)
    return call("POST", "/projects/" .. c.id .. "/tasks", c.token, { title = "Matrix task" })
  end },
}

local CODES = { [403] = "forbidden", [404] = "not_found", [409] = "conflict" }

-- What must be visible after a successful write, so a 2xx that did nothing
-- is caught too. Read back through the API as the global admin (a psql run
-- per cell would make the suite several times slower).
local function project_of(c)
  local res = call("GET", "/projects/" .. c.id, c.u.global.access)
  return res.status == 200 and res.body.data or nil
end

local function role_of(c, user)
  local res = call("GET", "/projects/" .. c.id .. "/members?limit=100", c.u.global.access)
  assert.are.equal(200, res.status)
  for _, m in ipairs(res.body.data) do
    if m.userId == user.id then
      return m.role
    end
  end
  return nil
end

local EFFECTS = {
  ["update the project"] = function(c)
    local p = project_of(c)
    return p.name == "Renamed" and p.visibility == "public"
  end,
  ["archive the project"] = function(c) return project_of(c).status == "archived" end,
  ["delete the project"] = function(c) return project_of(c) == nil end,
  ["transfer ownership to a member"] = function(c)
    return role_of(c, c.u.member2) == "owner" and role_of(c, c.u.owner) == "admin"
      and project_of(c).ownerId == c.u.member2.id
  end,
  ["add a user as member"] = function(c) return role_of(c, c.u.newcomer) == "member" end,
  ["add a user as viewer"] = function(c) return role_of(c, c.u.newcomer) == "viewer" end,
  ["add a user as admin"] = function(c) return role_of(c, c.u.newcomer) == "admin" end,
  ["change a member to viewer"] = function(c) return role_of(c, c.u.member2) == "viewer" end,
  ["change a viewer to member"] = function(c) return role_of(c, c.u.viewer2) == "member" end,
  ["change a member to admin"] = function(c) return role_of(c, c.u.member2) == "admin" end,
  ["change an admin to member"] = function(c) return role_of(c, c.u.admin2) == "member" end,
  ["remove a viewer"] = function(c) return role_of(c, c.u.viewer2) == nil end,
  ["remove a member"] = function(c) return role_of(c, c.u.member2) == nil end,
  ["remove an admin"] = function(c) return role_of(c, c.u.admin2) == nil end,
  ["leave"] = function(c) return role_of(c, c.me) == nil end,
  ["create a task"] = function(c)
    local res = call("GET", "/projects/" .. c.id .. "/tasks", c.u.global.access)
    return res.status == 200 and #res.body.data == 1
  end,
}

describe("the role matrix of API.md §3", function()
  local u = {}

  setup(function()
    for _, name in ipairs({ "owner", "admin", "member", "viewer", "admin2", "member2", "viewer2",
      "outsider", "newcomer" }) do
      u[name] = P.user("Matrix " .. name)
    end
    u.global = P.global_admin("Matrix global admin")
  end)

  local projects -- "<action row>/<caller index>" -> project id, one per cell

  setup(function()
    local specs = {}
    for r = 1, #MATRIX do
      for i, caller in ipairs(CALLERS) do
        specs[#specs + 1] = { key = r .. "/" .. i,
          visibility = caller == "outsider (public)" and "public" or "private" }
      end
    end
    projects = P.make_many(u.owner.id, {
      [u.admin.id] = "admin", [u.member.id] = "member", [u.viewer.id] = "viewer",
      [u.admin2.id] = "admin", [u.member2.id] = "member", [u.viewer2.id] = "viewer",
    }, specs)
  end)

  -- The cell's own project (with every role), seen by `caller`.
  local function cell(r, i, caller)
    local me = ({
      owner = u.owner, admin = u.admin, member = u.member, viewer = u.viewer,
      ["outsider (private)"] = u.outsider, ["outsider (public)"] = u.outsider,
      ["global admin"] = u.global,
    })[caller]
    return { id = projects[r .. "/" .. i], me = me, token = me.access, u = u }
  end

  for r, row in ipairs(MATRIX) do
    local action, expected, act = row[1], row[2], row[3]
    describe(action, function()
      for i, caller in ipairs(CALLERS) do
        local want = expected[i]
        it(("%s: %s → %d"):format(caller, action, want), function()
          local c = cell(r, i, caller)
          local res = act(c)
          if CODES[want] then
            h.expect_error(res, want, CODES[want])
          else
            h.expect_status(res, want)
            if EFFECTS[action] then
              assert.is_true(EFFECTS[action](c), "the database does not show the change")
            end
          end
        end)
      end
    end)
  end
end)
