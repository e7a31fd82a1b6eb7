-- Users: the public User shape of API.md §2 and the queries shared by the
-- auth routes.
local db = require "lib.db"
local json = require "lib.json"

local M = {}

-- token_version goes into access tokens (claim "ver"); disabled_at refuses
-- logins and tokens (migrations/0006). Neither is part of the public User.
M.COLUMNS = "id, email, name, role, avatar_url, email_verified, created_at, updated_at, "
  .. "token_version, disabled_at"

local SHAPE = json.shape({ "id", "email", "name", "role", "avatarUrl", "emailVerified", "createdAt",
  "updatedAt" })

--- The User object clients see (never the password hash).
function M.public(row)
  return setmetatable({
    id = row.id,
    email = row.email,
    name = row.name,
    role = row.role,
    avatarUrl = json.nullable(row.avatar_url),
    emailVerified = row.email_verified,
    createdAt = row.created_at,
    updatedAt = row.updated_at,
  }, SHAPE)
end

function M.by_id(id)
  return db.one("SELECT " .. M.COLUMNS .. " FROM users WHERE id = $1", id)
end

return M
