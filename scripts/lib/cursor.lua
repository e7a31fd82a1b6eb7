-- Opaque keyset cursors: the sort key of the last row plus its id, encoded
-- as base64url JSON. Stable under concurrent inserts because the next page
-- starts strictly after (key, id), never at an OFFSET.
local json = require "lib.json"
local errors = require "lib.errors"
local schema = require "lib.schema"
local uuid = require "lib.uuid"

local M = {}

-- A timestamp as the database hands them out ("...T...Z", milliseconds);
-- schema's date-time check adds a real calendar date and time of day.
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"
local DATE_TIME = { type = "string", format = "date-time" }

local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local DECODE = {}
for i = 1, #ALPHA do
  DECODE[ALPHA:byte(i)] = i - 1
end

local function b64url_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = ALPHA:sub((n >> 18) + 1, (n >> 18) + 1)
    out[#out + 1] = ALPHA:sub(((n >> 12) & 63) + 1, ((n >> 12) & 63) + 1)
    if b then
      out[#out + 1] = ALPHA:sub(((n >> 6) & 63) + 1, ((n >> 6) & 63) + 1)
    end
    if c then
      out[#out + 1] = ALPHA:sub((n & 63) + 1, (n & 63) + 1)
    end
  end
  return table.concat(out)
end

local function b64url_decode(s)
  if #s % 4 == 1 or s:find("[^%w%-_]") then
    return nil
  end
  local out = {}
  for i = 1, #s, 4 do
    local n, k = 0, 0
    for j = i, math.min(i + 3, #s) do
      n = (n << 6) | DECODE[s:byte(j)]
      k = k + 1
    end
    n = n << (6 * (4 - k))
    out[#out + 1] = string.char((n >> 16) & 255)
    if k > 2 then
      out[#out + 1] = string.char((n >> 8) & 255)
    end
    if k > 3 then
      out[#out + 1] = string.char(n & 255)
    end
  end
  return table.concat(out)
end

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
