-- JSON at the boundary. Encoding is tk.json (runtime/lua/l_json.c), one
-- pass in C with the two traps of Lua tables handled by construction:
--   * an empty Lua table is ambiguous: it encodes as {} unless it is marked
--     as an array (json.array(t), or arrays coming from the database), in
--     which case it encodes as [];
--   * JSON null is json.null (a sentinel distinct from nil), so a null in a
--     request is never confused with a missing key.
-- Key order is stable: objects made with a json.shape are written in the
-- shape's order (the contract's field order, id first), any other object
-- "id" first and then sorted. '/' is not escaped. Decoding stays lua-cjson.
local cjson = require "cjson"
local tkjson = require "tk.json"

local type, setmetatable = type, setmetatable

local M = {}

M.null = cjson.null
M.array_mt = tkjson.array_mt

local codec = cjson.new()
codec.decode_max_depth(64)

--- Encodes a Lua value as JSON text. Raises on values JSON cannot hold.
M.encode = tkjson.encode

--- A metatable for objects of one shape: setmetatable(t, shape) makes
--- json.encode write t's keys in the order of `keys`.
M.shape = tkjson.shape

--- True for pre-encoded JSON (tk.db query_json / one_json); tostring(v)
--- gives its text.
M.is_fragment = tkjson.is_fragment

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
