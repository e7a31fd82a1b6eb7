-- The environment a spec's own server starts from: every variable the server
-- reads (`taskapi env`, made from the table in runtime/config_vars.h) that
-- the spec does not set is unset, so a developer's shell (their Redis, their
-- SMTP server, a LOG_FILE) never changes what a spec sees. One list, kept by
-- the server itself.
local M = {}

local names_of = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The names `bin env` prints (cached per binary).
function M.names(bin)
  if not names_of[bin] then
    local p = assert(io.popen(quote(bin) .. " env"))
    local names = {}
    for line in p:lines() do
      names[#names + 1] = line
    end
    assert(p:close(), bin .. " env failed")
    assert(#names > 0, bin .. " env printed nothing")
    names_of[bin] = names
  end
  return names_of[bin]
end

--- "-u NAME ..." for env(1): every name of M.names(bin) not a key of `set`.
function M.unset_flags(bin, set)
  local parts = {}
  for _, k in ipairs(M.names(bin)) do
    if set[k] == nil then
      parts[#parts + 1] = "-u " .. k
    end
  end
  return table.concat(parts, " ")
end

return M
