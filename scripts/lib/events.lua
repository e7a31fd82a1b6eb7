-- Domain events for realtime clients (API.md §8). publish() never delivers
-- inside a transaction: the event waits for the commit and is dropped on
-- rollback, so clients only ever hear about committed changes. Some events
-- also end subscriptions, right after they are delivered (on every
-- instance): "member:removed" takes the removed user out of the project's
-- room, "project:deleted" empties the room, and a project made private has
-- every subscriber checked again (readers who are not members leave).
local tkdb = require "tk.db"
local runtime = require "tk.runtime"
local realtime = require "tk.realtime"
local json = require "lib.json"
local plugins = require "lib.plugins"

local M = {}

--- Publishes event `name` with `data` to `room` ("project:<id>", "user:<id>").
function M.publish(room, name, data)
  local payload = json.encode(data)
  -- Plugins' domain hooks ("task:created" -> task.created) run here, inside
  -- the change's transaction, each in its own savepoint (lib.plugins).
  plugins.domain_event(room, name, data)
  tkdb.after_commit(function()
    runtime.emit(room, name, payload)
    if name == "member:removed" and type(data.userId) == "string" then
      realtime.kick(room, data.userId)
    elseif name == "project:deleted" then
      realtime.close_room(room)
    elseif name == "project:updated" and type(data.project) == "table"
        and data.project.visibility == "private" then
      realtime.recheck(room)
    end
  end)
end

return M
