-- Who may join which realtime room (API.md §8). The WebSocket server calls
-- app.realtime.can_join(user, room) on its own Lua VM before a connection
-- joins a room, so a join obeys the same permission policy as REST reads:
--   "project:<id>"     the project exists and policies.permissions lets the
--                      user read it (a private project they may not read is
--                      "not_found", exactly like GET /projects/:id)
--   "user:<own id>"    always (every connection starts in it anyway)
--   anything else      "not_found"
-- Returns true, or false and an error code of API.md §1. A raised lib.errors
-- error (503 when the database is down) reaches the client as its code.
local permissions = require "policies.permissions"
local projects = require "lib.projects"

local M = {}

--- May `user` ({id, role}) join `room`? true | false, code
function M.can_join(user, room)
  if type(room) ~= "string" then
    return false, "not_found"
  end
  local kind, id = room:match("^(%l+):(.+)$")
  if kind == "user" then
    if id == user.id then
      return true
    end
    return false, "not_found"
  end
  if kind == "project" then
    local project = projects.load(user, id)
    if project and permissions.can_read(user, project) then
      return true
    end
  end
  return false, "not_found"
end

return M
