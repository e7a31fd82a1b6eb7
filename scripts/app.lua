-- The application entry point. The runtime runs this file in every worker's
-- VM; it must return { routes = {...}, dispatch = fn }. Every file in
-- routes/ is loaded in name order and returns a route group.
local runtime = require "tk.runtime"
local dispatch = require "lib.dispatch"
local openapi = require "lib.openapi"
local plugins = require "lib.plugins"
local ratelimit = require "lib.ratelimit"
local realtime = require "lib.realtime"
local route = require "lib.route"

local routes = {}
for _, file in ipairs(runtime.list_dir("routes")) do
  local group = require("routes." .. file:gsub("%.lua$", ""))
  if type(group) ~= "table" or type(group.routes) ~= "table" then
    error(("routes/%s must return a route group (lib.route)"):format(file), 0)
  end
  for _, r in ipairs(group.routes) do
    routes[#routes + 1] = r
  end
end

-- Enabled plugins (PLUGINS, PLUGINS_CONFIG): loaded and checked here, so a
-- broken one fails this generation as a whole; their routes join the table.
for _, r in ipairs(plugins.load()) do
  routes[#routes + 1] = r
end

-- The OpenAPI document describes every route above and itself; it is
-- built once here, from the same schemas that validate requests.
local doc
local meta = route.group("/api/v1")
meta:get("/openapi.json", { auth = "none", summary = "This OpenAPI 3.1 document" }, function()
  return 200, doc
end)
routes[#routes + 1] = meta.routes[1]

local ratelimits = require "policies.ratelimits"
for _, r in ipairs(routes) do
  r.rate = ratelimits.for_route(r)
end
ratelimit.check(routes)

dispatch.check(routes)

doc = openapi.build(routes, {
  title = "Task API",
  version = runtime.version,
  description = "The Task Management API served by taskapi. Errors always have the shape "
    .. "{\"error\": {\"code\", \"message\", \"details\"}}.",
})

return {
  routes = routes,
  dispatch = dispatch.new(routes),
  -- Called by the WebSocket server before a connection joins a room.
  realtime = { can_join = realtime.can_join },
}
