-- JSON at the boundary, on lua-cjson, with its two traps handled here once:
--   * an empty Lua table is ambiguous: it encodes as {} unless it is marked
--     as an array (json.array(t), or arrays coming from the database), in
--     which case it encodes as [];
--   * JSON null decodes to json.null (a sentinel distinct from nil), so a
--     null in a request is never confused with a missing key.
local cjson = require "cjson"

local type, next, pairs, getmetatable, setmetatable = type, next, pairs, getmetatable, setmetatable

local ok_rt, runtime = pcall(require, "tk.runtime")

local M = {}

M.null = cjson.null
M.array_mt = ok_rt and runtime.array_mt or { __name = "json.array" }

local codec = cjson.new()
codec.encode_sparse_array(false)
codec.encode_max_depth(64)
codec.decode_max_depth(64)

-- A string no client can produce: control characters around a per-process
-- random tag. It stands in for empty arrays while cjson encodes.
local tag = tostring({}):gsub("[^%w]", "") .. tostring(os.time()) .. tostring(math.random(1 << 30))
local EMPTY = "\1empty-array-" .. tag .. "\1"
local EMPTY_ENCODED = codec.encode(EMPTY)

local function is_array_marked(t)
  local mt = getmetatable(t)
  return mt ~= nil and (mt == M.array_mt or mt.__name == "json.array")
end

-- Returns v, or a copy of it in which every empty marked array is replaced
-- by EMPTY (copy-on-write: untouched subtrees are shared, never mutated).
local function fix(v, depth)
  if depth > 64 then
    error("json.encode: nesting too deep", 0)
  end
  if next(v) == nil then
    if is_array_marked(v) then
      return EMPTY, true
    end
    return v, false
  end
  local copy, found = nil, false
  for k, x in pairs(v) do
    if type(x) == "table" then
      local y, f = fix(x, depth + 1)
      if f then
        found = true
        if y ~= x then
          if copy == nil then
            copy = {}
            for k2, x2 in pairs(v) do
              copy[k2] = x2
            end
          end
          copy[k] = y
        end
      end
    end
  end
  return copy or v, found
end

--- Encodes a Lua value as JSON text. Raises on values JSON cannot hold.
function M.encode(v)
  if type(v) ~= "table" then
    return codec.encode(v)
  end
  local fixed, found = fix(v, 0)
  local s = codec.encode(fixed)
  if found then
    -- A plain find loop: a gsub with a pattern costs ~15x more on big pages.
    local parts, pos = {}, 1
    while true do
      local a, b = s:find(EMPTY_ENCODED, pos, true)
      if a == nil then
        break
      end
      parts[#parts + 1] = s:sub(pos, a - 1)
      parts[#parts + 1] = "[]"
      pos = b + 1
    end
    parts[#parts + 1] = s:sub(pos)
    s = table.concat(parts)
  end
  return s
end

-- RFC 8259 allows no raw control character (U+0000..U+001F) in JSON text
-- but the whitespace \t \n \r between tokens; cjson accepts them inside
-- strings, so they are checked here. Returns the position of the first one
-- that is not allowed, or nil.
local function bad_control(s)
  local at = s:find("[\0-\8\11\12\14-\31]")
  if at or not s:find("[\t\n\r]") then
    return at
  end
  -- \t \n \r: fine between tokens, not inside a string
  local pos, in_string = 1, false
  while true do
    local i = s:find(in_string and '[\t\n\r"\\]' or '"', pos)
    if i == nil then
      return nil
    end
    local c = s:byte(i)
    if c == 34 then -- "
      in_string, pos = not in_string, i + 1
    elseif c == 92 then -- a backslash escapes the next character
      pos = i + 2
    else
      return i
    end
  end
end

--- Decodes JSON text: value | nil, message.
function M.decode(s)
  if type(s) == "string" then
    local at = bad_control(s)
    if at then
      return nil, ("unescaped control character (U+%04X) at character %d"):format(s:byte(at), at)
    end
  end
  local ok, v = pcall(codec.decode, s)
  if not ok then
    return nil, (tostring(v):gsub("^.-:%d+: ", ""))
  end
  return v
end

--- Marks t (or a new table) as a JSON array and returns it.
function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

--- Returns v, or json.null when v is nil (for nullable fields).
function M.nullable(v)
  if v == nil then
    return M.null
  end
  return v
end

return M
