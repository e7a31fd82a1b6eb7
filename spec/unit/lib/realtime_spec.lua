-- Unit specs for scripts/lib/realtime.lua: which rooms a connection may join
-- (API.md §8), answered by the same permission policy as REST reads. The
-- project lookup (lib.projects, which needs the database) is replaced by a
-- table of rows; policies.permissions is the real one.
-- luacheck: std lua54+busted

local ME = "00000000-0000-4000-8000-000000000001"
local OTHER = "00000000-0000-4000-8000-000000000002"
local PRIVATE = "10000000-0000-4000-8000-000000000001"
local PUBLIC = "10000000-0000-4000-8000-000000000002"
local MINE = "10000000-0000-4000-8000-000000000003"

-- project id -> row as lib.projects.load returns it for user ME
local rows = {
  [PRIVATE] = { id = PRIVATE, visibility = "private", my_role = nil },
  [PUBLIC] = { id = PUBLIC, visibility = "public", my_role = nil },
  [MINE] = { id = MINE, visibility = "private", my_role = "viewer" },
}
local loads = {}

package.loaded["lib.projects"] = {
  load = function(user, id)
    loads[#loads + 1] = { user = user.id, id = id }
    if id == "boom" then
      error({ status = 503, code = "unavailable", message = "database unavailable" }, 0)
    end
    return rows[id]
  end,
}

local realtime = require("lib.realtime")

local user = { id = ME, role = "user" }
local admin = { id = ME, role = "admin" }

describe("lib.realtime.can_join", function()
  before_each(function()
    loads = {}
  end)

  it("lets a member (any role) join its project room", function()
    assert.is_true(realtime.can_join(user, "project:" .. MINE))
    assert.are.same({ { user = ME, id = MINE } }, loads)
  end)

  it("lets anyone join a public project room", function()
    assert.is_true(realtime.can_join(user, "project:" .. PUBLIC))
  end)

  it("refuses a private project the user may not read as not_found (never forbidden)", function()
    local ok, code = realtime.can_join(user, "project:" .. PRIVATE)
    assert.is_false(ok)
    assert.are.equal("not_found", code)
  end)

  it("lets a global admin join a private project", function()
    assert.is_true(realtime.can_join(admin, "project:" .. PRIVATE))
  end)

  it("refuses a project that does not exist as not_found", function()
    local ok, code = realtime.can_join(user, "project:" .. OTHER)
    assert.is_false(ok)
    assert.are.equal("not_found", code)
  end)

  it("lets a user join only its own user room", function()
    assert.is_true(realtime.can_join(user, "user:" .. ME))
    local ok, code = realtime.can_join(user, "user:" .. OTHER)
    assert.is_false(ok)
    assert.are.equal("not_found", code)
    assert.is_false((realtime.can_join(admin, "user:" .. OTHER)))
    assert.are.same({}, loads, "user rooms need no database")
  end)

  it("refuses every other room shape as not_found", function()
    for _, room in ipairs({ "lobby", "project:", "project", ":x", "Project:" .. MINE, "task:" .. MINE,
      "user:", "", "project:" .. MINE .. "\n" }) do
      local ok, code = realtime.can_join(user, room)
      assert.is_false(ok, room)
      assert.are.equal("not_found", code, room)
    end
    local ok, code = realtime.can_join(user, nil)
    assert.is_false(ok)
    assert.are.equal("not_found", code)
  end)

  it("lets a database failure propagate (the server answers its code)", function()
    local ok, err = pcall(realtime.can_join, user, "project:boom")
    assert.is_false(ok)
    assert.are.equal("unavailable", err.code)
  end)
end)
