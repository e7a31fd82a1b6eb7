-- Unit specs for scripts/policies/permissions.lua: the whole role matrix of
-- API.md §3, cell by cell (one `it` per caller and action, so a failure
-- names the cell), for the roles owner > admin > member > viewer, a
-- non-member of a private and of a public project, and a global admin who
-- is not a member. No server, no database: the policy is pure Lua.
-- luacheck: std lua54+busted

local permissions = require("policies.permissions")

local ME = "00000000-0000-4000-8000-000000000001"
local OTHER = "00000000-0000-4000-8000-000000000002"

-- Callers: the user table a route gets (req.user) and the project row as
-- lib.projects loads it (my_role from the caller's membership).
local CALLERS = {
  { name = "owner", role = "user", my_role = "owner", visibility = "private" },
  { name = "admin", role = "user", my_role = "admin", visibility = "private" },
  { name = "member", role = "user", my_role = "member", visibility = "private" },
  { name = "viewer", role = "user", my_role = "viewer", visibility = "private" },
  { name = "non-member (private)", role = "user", my_role = nil, visibility = "private" },
  { name = "non-member (public)", role = "user", my_role = nil, visibility = "public" },
  { name = "global admin", role = "admin", my_role = nil, visibility = "private" },
}
local ORDER = { "owner", "admin", "member", "viewer", "non-member (private)", "non-member (public)",
  "global admin" }

-- Expected answers in ORDER: true = allowed, "F" = forbidden, "N" = not_found.
local Y, F, N = true, "F", "N"

-- { label, action, target, expectations in ORDER }
local MATRIX = {
  { "read the project", "project.read", nil, { Y, Y, Y, Y, N, Y, Y } },
  { "read its tasks", "task.read", nil, { Y, Y, Y, Y, N, Y, Y } },
  { "read its comments", "comment.read", nil, { Y, Y, Y, Y, N, Y, Y } },
  { "list its members", "member.list", nil, { Y, Y, Y, Y, N, Y, Y } },
  { "update the project", "project.update", nil, { Y, Y, F, F, N, F, Y } },
  { "delete the project", "project.delete", nil, { Y, F, F, F, N, F, Y } },
  { "transfer ownership", "project.transfer", nil, { Y, F, F, F, N, F, Y } },
  { "create a task", "task.create", nil, { Y, Y, Y, F, N, F, Y } },
  { "update a task", "task.update", nil, { Y, Y, Y, F, N, F, Y } },
  { "comment", "comment.create", nil, { Y, Y, Y, F, N, F, Y } },
  -- task.delete: its creator (if still member+), admin, owner
  { "delete a task it created", "task.delete", { created_by = ME }, { Y, Y, Y, F, N, F, Y } },
  { "delete a task someone else created", "task.delete", { created_by = OTHER },
    { Y, Y, F, F, N, F, Y } },
  -- comments: the author edits and deletes; admin/owner delete any
  { "edit its own comment", "comment.update", { user_id = ME }, { Y, Y, Y, Y, N, F, Y } },
  { "edit someone else's comment", "comment.update", { user_id = OTHER }, { F, F, F, F, N, F, Y } },
  { "delete its own comment", "comment.delete", { user_id = ME }, { Y, Y, Y, Y, N, nil, Y } },
  { "delete someone else's comment", "comment.delete", { user_id = OTHER }, { Y, Y, F, F, N, F, Y } },
  -- members: admin and up manage roles below their own; only the owner makes admins
  { "add a viewer", "member.add", { role = "viewer" }, { Y, Y, F, F, N, F, Y } },
  { "add a member", "member.add", { role = "member" }, { Y, Y, F, F, N, F, Y } },
  { "add an admin", "member.add", { role = "admin" }, { Y, F, F, F, N, F, Y } },
  { "change member to viewer", "member.change", { from = "member", to = "viewer" },
    { Y, Y, F, F, N, F, Y } },
  { "change viewer to member", "member.change", { from = "viewer", to = "member" },
    { Y, Y, F, F, N, F, Y } },
  { "change member to admin", "member.change", { from = "member", to = "admin" },
    { Y, F, F, F, N, F, Y } },
  { "change admin to member", "member.change", { from = "admin", to = "member" },
    { Y, F, F, F, N, F, Y } },
  { "change admin to viewer", "member.change", { from = "admin", to = "viewer" },
    { Y, F, F, F, N, F, Y } },
  { "remove a viewer", "member.remove", { role = "viewer", user_id = OTHER }, { Y, Y, F, F, N, F, Y } },
  { "remove a member", "member.remove", { role = "member", user_id = OTHER }, { Y, Y, F, F, N, F, Y } },
  { "remove an admin", "member.remove", { role = "admin", user_id = OTHER }, { Y, F, F, F, N, F, Y } },
  -- leaving is always allowed by the policy; the route answers 409 for the
  -- owner and 404 for someone who is not a member
  { "leave (remove itself)", "member.remove", { role = "viewer", user_id = ME },
    { Y, Y, Y, Y, N, Y, Y } },
}

local function caller(c, status)
  local user = { id = ME, role = c.role }
  local project = { id = OTHER, my_role = c.my_role, visibility = c.visibility,
    status = status or "active" }
  return user, project
end

local function outcome(ok, why)
  if ok == true then
    return true
  end
  if why == "not_found" then
    return "N"
  end
  assert.are.equal("forbidden", why)
  return "F"
end

describe("policies.permissions", function()
  local by_name = {}
  for _, c in ipairs(CALLERS) do
    by_name[c.name] = c
  end

  describe("the role matrix of API.md §3", function()
    for _, row in ipairs(MATRIX) do
      local label, action, target, expected = row[1], row[2], row[3], row[4]
      for i, name in ipairs(ORDER) do
        local want = expected[i]
        if want ~= nil then
          local word = want == true and "may" or (want == "N" and "does not even see the project to")
            or "is forbidden to"
          it(("%s %s %s (%s)"):format(name, word, label, action), function()
            local user, project = caller(by_name[name])
            local ok, why = permissions.can(user, action, project, target)
            assert.are.equal(want, outcome(ok, why))
          end)
        end
      end
    end
  end)

  describe("fine points", function()
    it("a creator who was demoted to viewer may no longer delete its task", function()
      local user, project = caller(by_name.viewer)
      assert.are.equal("F", outcome(permissions.can(user, "task.delete", project, { created_by = ME })))
    end)

    it("an admin may not remove or change another admin (same rank)", function()
      local user, project = caller(by_name.admin)
      assert.are.equal("F", outcome(permissions.can(user, "member.remove", project,
        { role = "admin", user_id = OTHER })))
      assert.are.equal("F", outcome(permissions.can(user, "member.change", project,
        { from = "admin", to = "viewer" })))
    end)

    it("an admin may not promote itself or anyone to its own rank", function()
      local user, project = caller(by_name.admin)
      assert.are.equal("F", outcome(permissions.can(user, "member.change", project,
        { from = "viewer", to = "admin" })))
    end)

    it("nobody but a global admin acts above the owner: the owner cannot be given away by role change",
      function()
        local user, project = caller(by_name.owner)
        assert.are.equal("F", outcome(permissions.can(user, "member.change", project,
          { from = "owner", to = "admin" })))
        assert.are.equal("F", outcome(permissions.can(user, "member.add", project, { role = "owner" })))
      end)

    it("a private project hides itself (not_found) for every action from a non-member", function()
      local user, project = caller(by_name["non-member (private)"])
      for _, row in ipairs(MATRIX) do
        local ok, why = permissions.can(user, row[2], project, row[3])
        assert.is_false(ok)
        assert.are.equal("not_found", why, row[2])
      end
    end)

    it("the answer does not depend on the project being archived (lib.projects adds the 409)", function()
      for _, c in ipairs(CALLERS) do
        for _, row in ipairs(MATRIX) do
          local u1, active = caller(c, "active")
          local u2, archived = caller(c, "archived")
          local a1, w1 = permissions.can(u1, row[2], active, row[3])
          local a2, w2 = permissions.can(u2, row[2], archived, row[3])
          assert.are.equal(a1, a2, c.name .. " " .. row[2])
          assert.are.equal(w1, w2, c.name .. " " .. row[2])
        end
      end
    end)

    it("reads, project.update and project.delete are the only actions an archived project allows", function()
      local exempt = permissions.ARCHIVE_EXEMPT
      for _, a in ipairs({ "project.update", "project.delete", "project.read", "task.read",
        "comment.read", "member.list" }) do
        assert.is_true(exempt[a], a)
      end
      for _, a in ipairs({ "project.transfer", "task.create", "task.update", "task.delete",
        "comment.create", "comment.update", "comment.delete", "member.add", "member.change",
        "member.remove" }) do
        assert.is_falsy(exempt[a], a)
      end
    end)

    it("can_read: members, anyone on a public project, a global admin", function()
      for _, c in ipairs(CALLERS) do
        local user, project = caller(c)
        assert.are.equal(c.name ~= "non-member (private)", permissions.can_read(user, project), c.name)
      end
    end)

    it("ranks: owner > admin > member > viewer", function()
      local R = permissions.RANK
      assert.is_true(R.owner > R.admin and R.admin > R.member and R.member > R.viewer)
    end)

    it("an unknown action is a caller bug and raises", function()
      local user, project = caller(by_name.owner)
      assert.has_error(function()
        permissions.can(user, "project.explode", project, nil)
      end)
    end)
  end)
end)
