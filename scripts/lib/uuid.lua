-- UUID checks for path parameters: a malformed id is a 404, not a 400 or a
-- database error (API.md §1).
local M = {}

local PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function M.valid(s)
  return type(s) == "string" and #s == 36 and s:find(PATTERN) ~= nil
end

return M
