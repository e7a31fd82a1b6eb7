-- Opaque keyset cursors: the sort key of the last row plus its id, encoded
-- as base64url JSON. Stable under concurrent inserts because the next page
-- starts strictly after (key, id), never at an OFFSET.
local json = require "lib.json"
local errors = require "lib.errors"
local schema = require "lib.schema"
local uuid = require "lib.uuid"
local tkjson = require "tk.json"

local M = {}

-- A timestamp as the database hands them out ("...T...Z", milliseconds);
-- schema's date-time check adds a real calendar date and time of day.
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"
local DATE_TIME = { type = "string", format = "date-time" }

-- base64url without padding, in C (tk.json): the Lua version cost more
-- than the rest of a page's cursor handling (bench/README.md, Session
-- 2026-12-06). Decoding ignores the bits after the last whole byte.
local b64url_encode, b64url_decode = tkjson.b64url_encode, tkjson.b64url_decode

--- Encodes the position after `values` (a list: sort key(s) then id).
function M.encode(values)
  return b64url_encode(json.encode(json.array(values)))
end

--- Raises 400 invalid_parameter on the cursor parameter.
function M.bad()
  errors.raise(400, "invalid_parameter", "invalid cursor",
    { { field = "cursor", message = "is not a valid cursor" } })
end

--- Decodes a cursor into its list of values, checking it has `n` entries.
--- Raises 400 invalid_parameter on anything malformed.
function M.decode(s, n)
  local raw = type(s) == "string" and #s <= 1024 and b64url_decode(s)
  local v = raw and json.decode(raw)
  if type(v) ~= "table" or #v ~= n then
    M.bad()
  end
  return v
end

--- A timestamp key of a decoded cursor, checked: a string as the database
--- hands them out with a real date, so a forged cursor is a 400 and never
--- reaches a failing cast. Returns v; raises 400 invalid_parameter.
function M.time(v)
  if type(v) ~= "string" or not v:find(TIME) or not schema.validate(DATE_TIME, v) then
    M.bad()
  end
  return v
end

--- A (timestamp, uuid) keyset cursor: t, id, both nil when s is nil (the
--- first page). Raises 400 invalid_parameter on anything malformed.
function M.decode_time_id(s)
  if s == nil then
    return nil, nil
  end
  local v = M.decode(s, 2)
  if not uuid.valid(v[2]) then
    M.bad()
  end
  return M.time(v[1]), v[2]
end

--- The common list query parameters of API.md §1.
M.LIMIT = { type = "integer", minimum = 1, maximum = 100, default = 20 }
M.CURSOR = { type = "string", minLength = 1, maxLength = 1024 }

--- Trims a fetched page of limit+1 rows and returns rows, nextCursor.
--- key(row) returns the cursor values for a row.
function M.page(rows, limit, key)
  if #rows > limit then
    rows[#rows] = nil
    return rows, M.encode(key(rows[#rows]))
  end
  return rows, json.null
end

return M
