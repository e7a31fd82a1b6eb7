-- The application entry point. The runtime runs this file in every worker's
-- VM; it must return { routes = {...}, dispatch = fn }. Every file in
-- routes/ is loaded in name order and returns a route group.
local runtime = require "tk.runtime"
local dispatch = require "lib.dispatch"

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

dispatch.check(routes)

return {
  routes = routes,
  dispatch = dispatch.new(routes),
}
