-- Domain events for realtime clients (API.md §8). publish() never delivers
-- inside a transaction: the event waits for the commit and is dropped on
-- rollback, so clients only ever hear about committed changes.
local tkdb = require "tk.db"
local runtime = require "tk.runtime"
local json = require "lib.json"

local M = {}

--- Publishes event `name` with `data` to `room` ("project:<id>", "user:<id>").
function M.publish(room, name, data)
  local payload = json.encode(data)
  tkdb.after_commit(function()
    runtime.emit(room, name, payload)
  end)
end

return M
