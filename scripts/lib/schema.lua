-- schema.lua: a small declarative validation language for request bodies and
-- query strings. Schemas are pure data in a JSON-Schema-like shape, so the
-- same table validates input (M.validate) and becomes the OpenAPI 3.1 schema
-- (M.to_openapi). Decoding JSON and turning details into a 422 answer are left
-- to the caller (the router / http layer).
--
-- Schema keywords
--   every type   type, nullable, default, description, title, examples,
--                readOnly, writeOnly, deprecated (the last five are annotations
--                only; validation ignores them)
--   string       minLength, maxLength (Unicode code points), minBytes,
--                maxBytes (bytes), trim, lower, pattern, enum, format
--   integer      minimum, maximum, enum
--   number       minimum, maximum, enum
--   boolean      enum
--   array        items, minItems, maxItems, uniqueItems
--   object       properties, required, additionalProperties (default false;
--                true keeps unknown fields as they are, a schema validates them)
--
-- Notes
--   * `pattern` is a Lua pattern (string.find, anchored only if it says so with
--     ^ and $), not an ECMA regex; OpenAPI gets it as `x-lua-pattern`.
--   * `trim` strips ASCII and Unicode white space (the set JavaScript's
--     String.prototype.trim uses); `lower` lower-cases ASCII letters only, which
--     is what e-mail addresses need, and never touches other bytes.
--   * formats: email (ASCII addr-spec, dot-atom local part), uuid (any
--     version, either case), url (absolute http/https with a host, no user
--     info, ASCII only), date (YYYY-MM-DD or an RFC 3339 date-time; real
--     calendar dates), date-time (RFC 3339). Values are returned unchanged.
--   * JSON null is cjson.null. Absent fields stay absent (or get `default`),
--     null stays null (if `nullable`), so PATCH can tell "clear" from "keep".
--   * Field paths in details are dotted for objects and 0-based for arrays,
--     like a JavaScript client would write them: "author.name", "tags[0]".

local M = {}

local cjson = require("cjson")

local null = cjson.null
local type, pairs, ipairs = type, pairs, ipairs
local tostring, tonumber, error = tostring, tonumber, error
local setmetatable, getmetatable, pcall = setmetatable, getmetatable, pcall
local math_type, tointeger, huge = math.type, math.tointeger, math.huge
local sbyte, sfind, sgsub, smatch = string.byte, string.find, string.gsub, string.match
local ssub, sformat, srep, schar = string.sub, string.format, string.rep, string.char
local utf8_len, utf8_codepoint, utf8_codes = utf8.len, utf8.codepoint, utf8.codes
local tconcat, tsort = table.concat, table.sort

-- Marks tables that must be encoded as JSON arrays (even when empty). The JSON
-- encoder of the runtime recognises it by its __name.
M.array_mt = { __name = "json.array" }
local array_mt = M.array_mt

local function new_array(t)
  return setmetatable(t or {}, array_mt)
end

-- Error texts (details are short lowercase phrases, see API.md §1).
local E_REQUIRED      = "is required"
local E_NOT_ALLOWED   = "is not allowed"
local E_NULL          = "must not be null"
local E_STRING        = "must be a string"
local E_INTEGER       = "must be an integer"
local E_NUMBER        = "must be a number"
local E_BOOLEAN       = "must be a boolean"
local E_ARRAY         = "must be an array"
local E_OBJECT        = "must be an object"
local E_UTF8          = "must be valid UTF-8"
local E_NUL           = "must not contain NUL characters"
local E_DUPLICATES    = "must not contain duplicates"
local E_PATTERN       = "is not in the expected format"
local E_FORMAT = {
  email       = "must be a valid email address",
  uuid        = "must be a valid UUID",
  url         = "must be a valid URL",
  date        = "must be a valid date",
  ["date-time"] = "must be a valid date-time",
}

local DEFAULT_MAX_DETAILS = 100

---------------------------------------------------------------------------
-- Keyword tables
---------------------------------------------------------------------------

local TYPES = {
  string = true, integer = true, number = true,
  boolean = true, array = true, object = true,
}

-- Keywords every type accepts.
local COMMON = {
  type = true, nullable = true, default = true, description = true,
  title = true, examples = true, readOnly = true, writeOnly = true,
  deprecated = true,
}

local PER_TYPE = {
  string = {
    minLength = true, maxLength = true, minBytes = true, maxBytes = true,
    trim = true, lower = true, pattern = true, enum = true, format = true,
  },
  integer = { minimum = true, maximum = true, enum = true },
  number  = { minimum = true, maximum = true, enum = true },
  boolean = { enum = true },
  array   = { items = true, minItems = true, maxItems = true, uniqueItems = true },
  object  = { properties = true, required = true, additionalProperties = true },
}

local ANY_TYPE_KEYWORD = {}
for _, set in pairs(PER_TYPE) do
  for k in pairs(set) do ANY_TYPE_KEYWORD[k] = true end
end

local COUNT_KEYWORDS = {
  minLength = true, maxLength = true, minBytes = true, maxBytes = true,
  minItems = true, maxItems = true,
}
local BOOL_KEYWORDS = {
  nullable = true, trim = true, lower = true, uniqueItems = true,
  readOnly = true, writeOnly = true, deprecated = true,
}
local STRING_KEYWORDS = { description = true, title = true }

local FORMATS = { email = true, uuid = true, url = true, date = true, ["date-time"] = true }

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local function fmt_number(n)
  local i = tointeger(n)
  if i then return tostring(i) end
  return sformat("%.14g", n)
end

local function plural(n, one, many)
  return fmt_number(n) .. " " .. (n == 1 and one or many)
end

local function join(path, name)
  if path == "" then return name end
  return path .. "." .. name
end

local function index(path, i)
  return path .. "[" .. (i - 1) .. "]"
end

-- Tables marked as arrays by us, by the runtime's decoder (same __name), or by
-- cjson builds that have array_mt.
local function marked_array(t)
  local mt = getmetatable(t)
  return mt ~= nil and (mt == array_mt or mt == cjson.array_mt
    or (type(mt) == "table" and mt.__name == "json.array"))
end

-- Length of a proper sequence (keys exactly 1..n), or nil.
local function array_length(t)
  if type(t) ~= "table" then return nil end
  local n = 0
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 then return nil end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then return nil end
  end
  return n
end

-- An object is a table whose keys are all strings; an empty table is both an
-- object and an array (cjson 2.1 decodes {} and [] alike) unless marked.
local function is_object(t)
  if type(t) ~= "table" or marked_array(t) then return false end
  for k in pairs(t) do
    if type(k) ~= "string" then return false end
  end
  return true
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  tsort(keys)
  return keys
end

-- Copies a JSON-ish value, marking arrays (by the schema, or by their shape)
-- with array_mt so an empty default list still encodes as [].
local function copy_value(v, s)
  if type(v) ~= "table" then return v end
  local st = s and s.type
  local n = array_length(v)
  if st == "array" or (st == nil and n and n > 0) or marked_array(v) then
    local out = new_array()
    local items = s and s.items
    for i = 1, (n or 0) do out[i] = copy_value(v[i], items) end
    return out
  end
  local out, props = {}, s and s.properties
  for k, x in pairs(v) do out[k] = copy_value(x, props and props[k]) end
  return out
end

-- Unknown keys are echoed back in details: keep them printable and short.
local function safe_key(k)
  if type(k) ~= "string" then return tostring(k) end
  if #k <= 200 and utf8_len(k) and not sfind(k, "[%z\1-\31\127]") then return k end
  k = sgsub(ssub(k, 1, 200), "[%z\1-\31\127-\255]", "?")
  return k
end

---------------------------------------------------------------------------
-- Strings: trimming, lower-casing, formats
---------------------------------------------------------------------------

-- White space per ECMAScript (WhiteSpace + LineTerminator), which covers the
-- Unicode Zs category, tab/line breaks, NEL and the BOM.
local SPACE = {
  [0x09] = true, [0x0A] = true, [0x0B] = true, [0x0C] = true, [0x0D] = true,
  [0x20] = true, [0x85] = true, [0xA0] = true, [0x1680] = true,
  [0x2028] = true, [0x2029] = true, [0x202F] = true, [0x205F] = true,
  [0x3000] = true, [0xFEFF] = true,
}
for cp = 0x2000, 0x200A do SPACE[cp] = true end

-- s must be valid UTF-8 (checked by the caller).
local function trim(s)
  -- Fast path: both ends are printable ASCII (no space there, nothing to cut).
  local b1, bn = sbyte(s, 1), sbyte(s, -1)
  if b1 and b1 > 32 and b1 < 127 and bn > 32 and bn < 127 then return s end
  local first
  for p, c in utf8_codes(s) do
    if not SPACE[c] then first = p; break end
  end
  if not first then return "" end
  local last = #s
  while true do
    local p = last
    while (sbyte(s, p) & 0xC0) == 0x80 do p = p - 1 end -- start of last code point
    if not SPACE[utf8_codepoint(s, p)] then break end
    last = p - 1
  end
  if first == 1 and last == #s then return s end
  return ssub(s, first, last)
end

local LOWER = {}
for c = 65, 90 do LOWER[schar(c)] = schar(c + 32) end

local function ascii_lower(s)
  return (sgsub(s, "[A-Z]", LOWER))
end

local HEX = "[0-9A-Fa-f]"
local UUID_PATTERN = "^" .. srep(HEX, 8) .. "%-" .. srep(HEX, 4) .. "%-" .. srep(HEX, 4)
  .. "%-" .. srep(HEX, 4) .. "%-" .. srep(HEX, 12) .. "$"

local DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function valid_ymd(y, m, d)
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if y < 1 or m < 1 or m > 12 or d < 1 then return false end
  local max = DAYS[m]
  if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then max = 29 end
  return d <= max
end

local D2, D4 = "([0-9][0-9])", "([0-9][0-9][0-9][0-9])"
local DATE_PATTERN = "^" .. D4 .. "%-" .. D2 .. "%-" .. D2 .. "$"
local DATE_TIME_PATTERN = "^" .. D4 .. "%-" .. D2 .. "%-" .. D2 .. "[Tt]" .. D2 .. ":" .. D2
  .. ":" .. D2 .. "(.*)$"

local function valid_date(s)
  local y, m, d = smatch(s, DATE_PATTERN)
  return y ~= nil and valid_ymd(y, m, d)
end

local function valid_date_time(s)
  local y, mo, d, h, mi, sec, rest = smatch(s, DATE_TIME_PATTERN)
  if not y or not valid_ymd(y, mo, d) then return false end
  if tonumber(h) > 23 or tonumber(mi) > 59 or tonumber(sec) > 59 then return false end
  rest = sgsub(rest, "^%.[0-9]+", "", 1)
  if rest == "Z" or rest == "z" then return true end
  local oh, om = smatch(rest, "^[+-]" .. D2 .. ":" .. D2 .. "$")
  return oh ~= nil and tonumber(oh) <= 23 and tonumber(om) <= 59
end

local function valid_label(l)
  return #l >= 1 and #l <= 63 and smatch(l, "^[A-Za-z0-9][A-Za-z0-9-]*$") ~= nil
    and ssub(l, -1) ~= "-"
end

-- Host name: dot-separated labels of letters, digits and inner hyphens.
local function valid_hostname(h, min_labels)
  if #h == 0 or #h > 253 then return false end
  local count = 0
  for label in (h .. "."):gmatch("([^.]*)%.") do
    if not valid_label(label) then return false end
    count = count + 1
  end
  return count >= min_labels
end

local function valid_ipv4(h)
  local a, b, c, d = smatch(h, "^([0-9]+)%.([0-9]+)%.([0-9]+)%.([0-9]+)$")
  if not a then return false end
  for _, o in ipairs({ a, b, c, d }) do
    if #o > 3 or tonumber(o) > 255 or (#o > 1 and ssub(o, 1, 1) == "0") then return false end
  end
  return true
end

local EMAIL_LOCAL_CHARS = "^[A-Za-z0-9.!#$%%&'*+/=?^_`{|}~-]+$"

local function valid_email(s)
  if #s > 254 then return false end
  local loc, domain = smatch(s, "^([^@]+)@([^@]+)$")
  if not loc or #loc > 64 or not smatch(loc, EMAIL_LOCAL_CHARS) then return false end
  if ssub(loc, 1, 1) == "." or ssub(loc, -1) == "." or sfind(loc, "..", 1, true) then
    return false
  end
  if not valid_hostname(domain, 2) then return false end
  local tld = smatch(domain, "([^.]+)$")
  return smatch(tld, "^[A-Za-z]") ~= nil
end

local function valid_url(s)
  -- RFC 3986 characters only: printable ASCII minus the always-unsafe ones.
  if sfind(s, "[^\33-\126]") or sfind(s, "[<>\"\\^`{|}]") then return false end
  if sfind(sgsub(s, "%%" .. HEX .. HEX, ""), "%", 1, true) then return false end
  local scheme, rest = smatch(s, "^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
  if not scheme then return false end
  scheme = ascii_lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then return false end
  local authority = smatch(rest, "^[^/?#]*")
  if sfind(authority, "@", 1, true) then return false end
  local host, port = smatch(authority, "^(%[[0-9A-Fa-f:.]+%])(.*)$")
  if host then
    if not sfind(host, ":", 1, true) then return false end
  else
    host, port = smatch(authority, "^([^:]*)(.*)$")
    -- a name whose last label is numeric can only be an IPv4 address
    if smatch(host, "^[0-9]+$") or smatch(host, "%.[0-9]+$") then
      if not valid_ipv4(host) then return false end
    elseif not valid_hostname(host, 1) then
      return false
    end
  end
  if port ~= "" then
    local digits = smatch(port, "^:([0-9]+)$")
    if not digits or #digits > 5 or tonumber(digits) < 1 or tonumber(digits) > 65535 then
      return false
    end
  end
  return true
end

local FORMAT_CHECK = {
  email = valid_email,
  uuid = function(s) return smatch(s, UUID_PATTERN) ~= nil end,
  url = valid_url,
  date = function(s) return valid_date(s) or valid_date_time(s) end,
  ["date-time"] = valid_date_time,
}

---------------------------------------------------------------------------
-- Validation walk
---------------------------------------------------------------------------

-- ctx = { details = {}, coerce = bool, max = n, full = bool }
local function add(ctx, path, message)
  local details = ctx.details
  if #details >= ctx.max then ctx.full = true; return false end
  details[#details + 1] = { field = path, message = message }
  if #details >= ctx.max then ctx.full = true end
  return false
end

local function enum_ok(s, v)
  local enum = s.enum
  if not enum then return true end
  for _, x in ipairs(enum) do
    if x == v then return true end
  end
  return false
end

local function enum_message(s)
  local parts = {}
  for i, x in ipairs(s.enum) do parts[i] = tostring(x) end
  return "must be one of: " .. tconcat(parts, ", ")
end

local function check_range(s, v, path, ctx)
  if s.minimum and v < s.minimum then
    return add(ctx, path, "must be at least " .. fmt_number(s.minimum))
  end
  if s.maximum and v > s.maximum then
    return add(ctx, path, "must be at most " .. fmt_number(s.maximum))
  end
  if not enum_ok(s, v) then return add(ctx, path, enum_message(s)) end
  return true
end

local function parse_integer(str)
  if not smatch(str, "^[+-]?[0-9]+$") then return nil end
  return tointeger(tonumber(str))
end

local function parse_number(str)
  if not (smatch(str, "^[+-]?[0-9]+%.?[0-9]*$") or smatch(str, "^[+-]?%.[0-9]+$")
      or smatch(str, "^[+-]?[0-9]*%.?[0-9]+[eE][+-]?[0-9]+$")
      or smatch(str, "^[+-]?[0-9]+%.[eE][+-]?[0-9]+$")) then
    return nil
  end
  return tonumber(str)
end

local function finite(v)
  return v == v and v ~= huge and v ~= -huge
end

local walk -- forward declaration: (schema, value, path, ctx) -> ok, cleaned

local CHECK = {}

function CHECK.string(s, v, path, ctx)
  if type(v) ~= "string" then return add(ctx, path, E_STRING) end
  local len = utf8_len(v)
  if not len then return add(ctx, path, E_UTF8) end
  if sfind(v, "\0", 1, true) then return add(ctx, path, E_NUL) end
  if s.trim then
    local t = trim(v)
    if t ~= v then v, len = t, utf8_len(t) end
  end
  if s.lower then v = ascii_lower(v) end
  if s.minBytes and #v < s.minBytes then
    return add(ctx, path, "must be at least " .. plural(s.minBytes, "byte", "bytes"))
  end
  if s.maxBytes and #v > s.maxBytes then
    return add(ctx, path, "must be at most " .. plural(s.maxBytes, "byte", "bytes"))
  end
  if s.minLength and len < s.minLength then
    return add(ctx, path, "must be at least " .. plural(s.minLength, "character", "characters"))
  end
  if s.maxLength and len > s.maxLength then
    return add(ctx, path, "must be at most " .. plural(s.maxLength, "character", "characters"))
  end
  if not enum_ok(s, v) then return add(ctx, path, enum_message(s)) end
  if s.format and not FORMAT_CHECK[s.format](v) then
    return add(ctx, path, E_FORMAT[s.format])
  end
  if s.pattern and not sfind(v, s.pattern) then return add(ctx, path, E_PATTERN) end
  return true, v
end

function CHECK.integer(s, v, path, ctx)
  if ctx.coerce and type(v) == "string" then v = parse_integer(v) end
  local i = type(v) == "number" and tointeger(v) or nil
  if not i then return add(ctx, path, E_INTEGER) end
  if not check_range(s, i, path, ctx) then return false end
  return true, i
end

function CHECK.number(s, v, path, ctx)
  if ctx.coerce and type(v) == "string" then v = parse_number(v) end
  if type(v) ~= "number" or not finite(v) then return add(ctx, path, E_NUMBER) end
  if not check_range(s, v, path, ctx) then return false end
  return true, v
end

function CHECK.boolean(s, v, path, ctx)
  if ctx.coerce and type(v) == "string" then
    if v == "true" then v = true elseif v == "false" then v = false end
  end
  if type(v) ~= "boolean" then return add(ctx, path, E_BOOLEAN) end
  if not enum_ok(s, v) then return add(ctx, path, enum_message(s)) end
  return true, v
end

-- A stable text for any JSON value, used to find duplicates among tables.
local function canonical(v)
  if type(v) ~= "table" then
    if type(v) == "string" then return sformat("%q", v) end
    if type(v) == "number" then return fmt_number(v) end
    return tostring(v)
  end
  local n = array_length(v)
  local parts = {}
  if n and (n > 0 or marked_array(v)) then
    for i = 1, n do parts[i] = canonical(v[i]) end
    return "[" .. tconcat(parts, ",") .. "]"
  end
  for i, k in ipairs(sorted_keys(v)) do parts[i] = sformat("%q", k) .. ":" .. canonical(v[k]) end
  return "{" .. tconcat(parts, ",") .. "}"
end

local function has_duplicates(list)
  local seen = {}
  for i = 1, #list do
    local x = list[i]
    local key = type(x) == "table" and canonical(x) or x
    if seen[key] then return true end
    seen[key] = true
  end
  return false
end

local function split_commas(str)
  local out = {}
  if str == "" then return out end
  for item in (str .. ","):gmatch("([^,]*),") do out[#out + 1] = item end
  return out
end

function CHECK.array(s, v, path, ctx)
  if ctx.coerce and type(v) == "string" then v = split_commas(v) end
  local n = array_length(v)
  if not n then return add(ctx, path, E_ARRAY) end
  if s.minItems and n < s.minItems then
    return add(ctx, path, "must have at least " .. plural(s.minItems, "item", "items"))
  end
  if s.maxItems and n > s.maxItems then
    return add(ctx, path, "must have at most " .. plural(s.maxItems, "item", "items"))
  end
  local out, ok, items = new_array(), true, s.items
  for i = 1, n do
    if items then
      local item_ok, cleaned = walk(items, v[i], index(path, i), ctx)
      if item_ok then out[i] = cleaned else ok = false end
      if ctx.full then return false end
    else
      out[i] = v[i]
    end
  end
  if not ok then return false end
  if s.uniqueItems and has_duplicates(out) then return add(ctx, path, E_DUPLICATES) end
  return true, out
end

-- Per object schema: property names in a stable order and the required set.
-- Schemas are immutable data, so this is computed once per table.
local object_info = setmetatable({}, { __mode = "k" })

local function info_of(s)
  local info = object_info[s]
  if info then return info end
  local req = {}
  for _, name in ipairs(s.required or {}) do req[name] = true end
  info = { names = sorted_keys(s.properties or {}), required = req }
  object_info[s] = info
  return info
end

function CHECK.object(s, v, path, ctx)
  if not is_object(v) then return add(ctx, path, E_OBJECT) end
  local info, props = info_of(s), s.properties
  local out, ok = {}, true
  for _, name in ipairs(info.names) do
    local sub, fv = props[name], v[name]
    if fv == nil then
      if sub.default ~= nil then
        out[name] = copy_value(sub.default, sub)
      elseif info.required[name] then
        ok = add(ctx, join(path, name), E_REQUIRED)
      end
    else
      local field_ok, cleaned = walk(sub, fv, join(path, name), ctx)
      if field_ok then out[name] = cleaned else ok = false end
    end
    if ctx.full then return false end
  end
  local extra = s.additionalProperties
  local unknown
  for k in pairs(v) do
    if not (props and props[k] ~= nil) then
      unknown = unknown or {}
      unknown[#unknown + 1] = k
    end
  end
  if unknown then
    tsort(unknown)
    for _, k in ipairs(unknown) do
      if extra == true then
        out[k] = v[k] -- free-form: kept as given (shared, not copied)
      elseif type(extra) == "table" then
        local field_ok, cleaned = walk(extra, v[k], join(path, safe_key(k)), ctx)
        if field_ok then out[k] = cleaned else ok = false end
      else
        ok = add(ctx, join(path, safe_key(k)), E_NOT_ALLOWED)
      end
      if ctx.full then return false end
    end
  end
  if not ok then return false end
  return true, out
end

walk = function(s, v, path, ctx)
  if v == null then
    if s.nullable then return true, null end
    return add(ctx, path, E_NULL)
  end
  return CHECK[s.type](s, v, path, ctx)
end

---------------------------------------------------------------------------
-- Schema checking
---------------------------------------------------------------------------

local checked = setmetatable({}, { __mode = "k" })

local function type_matches(t, v)
  if t == "string" then return type(v) == "string" end
  if t == "integer" then return type(v) == "number" and tointeger(v) ~= nil end
  if t == "number" then return type(v) == "number" and finite(v) end
  if t == "boolean" then return type(v) == "boolean" end
  return false
end

local check_node -- forward declaration: (schema, path, stack, errs); appends to errs

-- Appends one error to errs; returns nil so callers can `return fail(...)`.
local function fail(errs, msg)
  errs[#errs + 1] = msg
  return nil
end

-- Keys in a deterministic order (strings sorted, others after) so the
-- errors reported do not depend on table iteration order.
local function sorted_keys_any(t)
  local strs, others = {}, {}
  for k in pairs(t) do
    if type(k) == "string" then strs[#strs + 1] = k else others[#others + 1] = k end
  end
  tsort(strs)
  for _, k in ipairs(others) do strs[#strs + 1] = k end
  return strs
end

local function check_keyword(s, k, v, path, stack, errs)
  local where = path .. "." .. k
  if COUNT_KEYWORDS[k] then
    if type(v) ~= "number" or not tointeger(v) or v < 0 then
      return fail(errs, where .. ": must be a non-negative integer")
    end
  elseif BOOL_KEYWORDS[k] then
    if type(v) ~= "boolean" then return fail(errs, where .. ": must be a boolean") end
  elseif STRING_KEYWORDS[k] then
    if type(v) ~= "string" then return fail(errs, where .. ": must be a string") end
  elseif k == "minimum" or k == "maximum" then
    if type(v) ~= "number" or not finite(v) then return fail(errs, where .. ": must be a number") end
  elseif k == "format" then
    if not FORMATS[v] then
      return fail(errs, where .. ": unknown format '" .. tostring(v)
        .. "' (expected email, uuid, url, date or date-time)")
    end
  elseif k == "pattern" then
    if type(v) ~= "string" then return fail(errs, where .. ": must be a string") end
    local ok, err = pcall(sfind, "", v)
    if not ok then return fail(errs, where .. ": bad Lua pattern: " .. tostring(err)) end
  elseif k == "enum" then
    local n = array_length(v)
    if not n or n == 0 then return fail(errs, where .. ": must be a non-empty list") end
    for i = 1, n do
      if not type_matches(s.type, v[i]) then
        fail(errs, where .. "[" .. (i - 1) .. "]: must be a " .. s.type)
      end
    end
  elseif k == "examples" then
    if not array_length(v) then return fail(errs, where .. ": must be a list") end
  elseif k == "items" then
    check_node(v, where, stack, errs)
  elseif k == "properties" then
    if type(v) ~= "table" then return fail(errs, where .. ": must be a table") end
    for _, name in ipairs(sorted_keys_any(v)) do
      if type(name) ~= "string" then
        fail(errs, where .. ": property names must be strings")
      else
        check_node(v[name], where .. "." .. name, stack, errs)
      end
    end
  elseif k == "required" then
    local n = array_length(v)
    if not n then return fail(errs, where .. ": must be a list of property names") end
    local seen = {}
    for i = 1, n do
      local name = v[i]
      if type(name) ~= "string" then
        fail(errs, where .. ": must be a list of property names")
      elseif not (type(s.properties) == "table" and s.properties[name] ~= nil) then
        fail(errs, where .. ": '" .. name .. "' is not in properties")
      elseif seen[name] then
        fail(errs, where .. ": '" .. name .. "' is listed twice")
      else
        seen[name] = true
      end
    end
  elseif k == "additionalProperties" then
    if type(v) == "table" then
      check_node(v, where, stack, errs)
    elseif type(v) ~= "boolean" then
      return fail(errs, where .. ": must be a boolean or a schema")
    end
  end
  return true
end

local function check_pair(s, lo, hi, path, errs)
  if type(s[lo]) == "number" and type(s[hi]) == "number" and s[lo] > s[hi] then
    fail(errs, path .. ": " .. lo .. " is greater than " .. hi)
  end
end

check_node = function(s, path, stack, errs)
  if type(s) ~= "table" then return fail(errs, path .. ": must be a schema table") end
  if stack[s] then return fail(errs, path .. ": schema refers to itself") end
  local t = s.type
  if t == nil then return fail(errs, path .. ": missing 'type'") end
  if not TYPES[t] then
    return fail(errs, path .. ": unknown type '" .. tostring(t)
      .. "' (expected string, integer, number, boolean, array or object)")
  end
  local before = #errs
  stack[s] = true
  local allowed = PER_TYPE[t]
  for _, k in ipairs(sorted_keys_any(s)) do
    if type(k) ~= "string" or not (COMMON[k] or allowed[k]) then
      if type(k) == "string" and ANY_TYPE_KEYWORD[k] then
        fail(errs, path .. ": keyword '" .. k .. "' does not apply to type " .. t)
      else
        fail(errs, path .. ": unknown keyword '" .. tostring(k) .. "'")
      end
    else
      check_keyword(s, k, s[k], path, stack, errs)
    end
  end
  stack[s] = nil
  for _, p in ipairs({ { "minLength", "maxLength" }, { "minBytes", "maxBytes" },
                       { "minItems", "maxItems" }, { "minimum", "maximum" } }) do
    check_pair(s, p[1], p[2], path, errs)
  end
  if #errs > before then
    return nil -- the node is broken: its default cannot be judged
  end
  if t == "object" then info_of(s) end
  if s.default ~= nil then
    local ctx = { details = {}, max = 1 }
    if not walk(s, s.default, "", ctx) then
      return fail(errs, path .. ".default: " .. ctx.details[1].message)
    end
  end
  return true
end

-- M.check(schema) -> true | nil, err, errs
-- Validates a schema definition (unknown keywords or types, keywords that do
-- not fit the type, bad format names, malformed Lua patterns, required names
-- missing from properties, min > max, defaults that fail their own schema).
-- Reports every problem, in a stable order (keywords and property names
-- sorted): err joins them with "; ", errs is the list. Each names its place:
-- "schema.properties.title.maxLenght: ...". Meant for script load time; a
-- good schema is remembered so validate() skips the work.
function M.check(schema)
  if checked[schema] then return true end
  local errs = {}
  check_node(schema, "schema", {}, errs)
  if #errs > 0 then return nil, tconcat(errs, "; "), errs end
  checked[schema] = true
  return true
end

local function ensure_checked(schema, fname)
  if checked[schema] then return end
  local ok, err = M.check(schema)
  if not ok then error("schema." .. fname .. ": invalid schema: " .. err, 3) end
end

---------------------------------------------------------------------------
-- Public API
---------------------------------------------------------------------------

-- M.validate(schema, value [, opts]) -> cleaned, nil | nil, details
-- Validates value against schema. On success returns a new value (the input
-- is never mutated) with strings trimmed/lower-cased, integers as Lua
-- integers, defaults filled in and arrays marked with M.array_mt. On failure
-- returns nil and a list of { field = "tags[0]", message = "..." }, one per
-- failing field, in a stable order (at most opts.max_details, default 100).
-- value == nil (no body at all) is "is required" on field "" unless the schema
-- has a default.
-- opts.coerce = true parses query-string values: integer, number and boolean
-- fields from strings, arrays from comma-separated strings.
-- An invalid schema is a caller bug and raises.
function M.validate(schema, value, opts)
  ensure_checked(schema, "validate")
  local ctx = {
    details = {},
    coerce = opts and opts.coerce or false,
    max = opts and opts.max_details or DEFAULT_MAX_DETAILS,
  }
  local ok, cleaned
  if value == nil then
    if schema.default ~= nil then return copy_value(schema.default, schema), nil end
    ok = add(ctx, "", E_REQUIRED)
  else
    ok, cleaned = walk(schema, value, "", ctx)
  end
  if not ok then return nil, ctx.details end
  return cleaned, nil
end

---------------------------------------------------------------------------
-- Compiled validators
---------------------------------------------------------------------------
-- M.compile turns a (checked) schema into a tree of Lua closures, built once
-- (per script generation, by lib.dispatch): every keyword, message, default,
-- enum set and field path that does not depend on the value is looked up or
-- formatted here, so a request only runs the checks its schema has. The
-- result is the same as M.validate's in every case (cleaned value, details,
-- their order), which spec/unit/lib/schema_compile_spec.lua checks against
-- M.validate over random schemas and inputs. No code is generated (no load).
--
-- A compiled node is fn(v, ppath, key) -> ok, cleaned: v is the value, and
-- its field path is known at compile time (spath, for a node reached from the
-- root through object properties only) or built from the parent's path and
-- the key only when it is needed (an error, or a container inside an array).

local function mkpath(ppath, key)
  if type(key) == "number" then return index(ppath, key) end
  return join(ppath, key)
end

local function enum_set(s)
  if not s.enum then return nil end
  local set = {}
  for _, x in ipairs(s.enum) do set[x] = true end
  return set
end

local compile_node -- forward declaration: (s, spath, st) -> fn

-- st: the validator's per-call state { details = nil | list, max = n, full }.
local function st_add(st, path, message)
  local details = st.details
  if not details then details = {}; st.details = details end
  if #details >= st.max then st.full = true; return false end
  details[#details + 1] = { field = path, message = message }
  if #details >= st.max then st.full = true end
  return false
end

local function at_least(n, one, many) return "must be at least " .. plural(n, one, many) end
local function at_most(n, one, many) return "must be at most " .. plural(n, one, many) end

local function compile_string(s, spath, st)
  local nullable, do_trim, do_lower = s.nullable, s.trim, s.lower
  local min_b, max_b, min_l, max_l = s.minBytes, s.maxBytes, s.minLength, s.maxLength
  local m_min_b = min_b and at_least(min_b, "byte", "bytes")
  local m_max_b = max_b and at_most(max_b, "byte", "bytes")
  local m_min_l = min_l and at_least(min_l, "character", "characters")
  local m_max_l = max_l and at_most(max_l, "character", "characters")
  local enum, m_enum = enum_set(s), s.enum and enum_message(s)
  local fcheck, m_format = s.format and FORMAT_CHECK[s.format], s.format and E_FORMAT[s.format]
  local pattern = s.pattern
  return function(v, ppath, key)
    if v == null then
      if nullable then return true, null end
      return st_add(st, spath or mkpath(ppath, key), E_NULL)
    end
    if type(v) ~= "string" then return st_add(st, spath or mkpath(ppath, key), E_STRING) end
    local len = utf8_len(v)
    if not len then return st_add(st, spath or mkpath(ppath, key), E_UTF8) end
    if sfind(v, "\0", 1, true) then return st_add(st, spath or mkpath(ppath, key), E_NUL) end
    if do_trim then
      local t = trim(v)
      if t ~= v then v, len = t, utf8_len(t) end
    end
    if do_lower then v = ascii_lower(v) end
    if min_b and #v < min_b then return st_add(st, spath or mkpath(ppath, key), m_min_b) end
    if max_b and #v > max_b then return st_add(st, spath or mkpath(ppath, key), m_max_b) end
    if min_l and len < min_l then return st_add(st, spath or mkpath(ppath, key), m_min_l) end
    if max_l and len > max_l then return st_add(st, spath or mkpath(ppath, key), m_max_l) end
    if enum and not enum[v] then return st_add(st, spath or mkpath(ppath, key), m_enum) end
    if fcheck and not fcheck(v) then return st_add(st, spath or mkpath(ppath, key), m_format) end
    if pattern and not sfind(v, pattern) then
      return st_add(st, spath or mkpath(ppath, key), E_PATTERN)
    end
    return true, v
  end
end

-- integer and number: the same range and enum checks (check_range).
local function compile_numeric(s, spath, st, coerce)
  local nullable, is_int = s.nullable, s.type == "integer"
  local min, max = s.minimum, s.maximum
  local m_min = min and "must be at least " .. fmt_number(min)
  local m_max = max and "must be at most " .. fmt_number(max)
  local enum, m_enum = enum_set(s), s.enum and enum_message(s)
  local parse, m_type = is_int and parse_integer or parse_number, is_int and E_INTEGER or E_NUMBER
  return function(v, ppath, key)
    if v == null then
      if nullable then return true, null end
      return st_add(st, spath or mkpath(ppath, key), E_NULL)
    end
    if coerce and type(v) == "string" then v = parse(v) end
    if type(v) ~= "number" then return st_add(st, spath or mkpath(ppath, key), m_type) end
    if is_int then
      v = tointeger(v)
      if not v then return st_add(st, spath or mkpath(ppath, key), m_type) end
    elseif not finite(v) then
      return st_add(st, spath or mkpath(ppath, key), m_type)
    end
    if min and v < min then return st_add(st, spath or mkpath(ppath, key), m_min) end
    if max and v > max then return st_add(st, spath or mkpath(ppath, key), m_max) end
    if enum and not enum[v] then return st_add(st, spath or mkpath(ppath, key), m_enum) end
    return true, v
  end
end

local function compile_boolean(s, spath, st, coerce)
  local nullable = s.nullable
  local enum, m_enum = enum_set(s), s.enum and enum_message(s)
  return function(v, ppath, key)
    if v == null then
      if nullable then return true, null end
      return st_add(st, spath or mkpath(ppath, key), E_NULL)
    end
    if coerce and type(v) == "string" then
      if v == "true" then v = true elseif v == "false" then v = false end
    end
    if type(v) ~= "boolean" then return st_add(st, spath or mkpath(ppath, key), E_BOOLEAN) end
    if enum and not enum[v] then return st_add(st, spath or mkpath(ppath, key), m_enum) end
    return true, v
  end
end

local function compile_array(s, spath, st, coerce)
  local nullable, unique = s.nullable, s.uniqueItems
  local min, max = s.minItems, s.maxItems
  local m_min = min and "must have at least " .. plural(min, "item", "items")
  local m_max = max and "must have at most " .. plural(max, "item", "items")
  local item = s.items and compile_node(s.items, nil, st, coerce)
  return function(v, ppath, key)
    local path = spath or mkpath(ppath, key)
    if v == null then
      if nullable then return true, null end
      return st_add(st, path, E_NULL)
    end
    if coerce and type(v) == "string" then v = split_commas(v) end
    local n = array_length(v)
    if not n then return st_add(st, path, E_ARRAY) end
    if min and n < min then return st_add(st, path, m_min) end
    if max and n > max then return st_add(st, path, m_max) end
    local out, ok = new_array(), true
    if item then
      for i = 1, n do
        local item_ok, cleaned = item(v[i], path, i)
        if item_ok then out[i] = cleaned else ok = false end
        if st.full then return false end
      end
    else
      for i = 1, n do out[i] = v[i] end
    end
    if not ok then return false end
    if unique and has_duplicates(out) then return st_add(st, path, E_DUPLICATES) end
    return true, out
  end
end

local function compile_object(s, spath, st, coerce)
  local nullable, props, extra = s.nullable, s.properties or {}, s.additionalProperties
  local info = info_of(s)
  local names, count = info.names, #info.names
  local check, subs, defaults, required, paths = {}, {}, {}, {}, {}
  for i, name in ipairs(names) do
    local sub = props[name]
    local cpath = spath and join(spath, name) or nil
    subs[i], paths[i] = sub, cpath
    check[i] = compile_node(sub, cpath, st, coerce)
    defaults[i] = sub.default -- nil when none (holes are fine: indexed by i)
    required[i] = info.required[name] or false
  end
  local extra_check = type(extra) == "table" and compile_node(extra, nil, st, coerce) or nil
  return function(v, ppath, key)
    local path = spath or mkpath(ppath, key)
    if v == null then
      if nullable then return true, null end
      return st_add(st, path, E_NULL)
    end
    if type(v) ~= "table" or marked_array(v) then return st_add(st, path, E_OBJECT) end
    -- one pass: every key a string (else not an object), and the unknown ones
    local unknown
    for k in pairs(v) do
      if type(k) ~= "string" then return st_add(st, path, E_OBJECT) end
      if props[k] == nil then
        unknown = unknown or {}
        unknown[#unknown + 1] = k
      end
    end
    local out, ok = {}, true
    for i = 1, count do
      local name = names[i]
      local fv = v[name]
      if fv == nil then
        local d = defaults[i]
        if d ~= nil then
          out[name] = copy_value(d, subs[i])
        elseif required[i] then
          ok = st_add(st, paths[i] or join(path, name), E_REQUIRED)
        end
      else
        local field_ok, cleaned = check[i](fv, path, name)
        if field_ok then out[name] = cleaned else ok = false end
      end
      if st.full then return false end
    end
    if unknown then
      tsort(unknown)
      for _, k in ipairs(unknown) do
        if extra == true then
          out[k] = v[k] -- free-form: kept as given (shared, not copied)
        elseif extra_check then
          local field_ok, cleaned = extra_check(v[k], path, safe_key(k))
          if field_ok then out[k] = cleaned else ok = false end
        else
          ok = st_add(st, join(path, safe_key(k)), E_NOT_ALLOWED)
        end
        if st.full then return false end
      end
    end
    if not ok then return false end
    return true, out
  end
end

compile_node = function(s, spath, st, coerce)
  local t = s.type
  if t == "string" then return compile_string(s, spath, st) end
  if t == "integer" or t == "number" then return compile_numeric(s, spath, st, coerce) end
  if t == "boolean" then return compile_boolean(s, spath, st, coerce) end
  if t == "array" then return compile_array(s, spath, st, coerce) end
  return compile_object(s, spath, st, coerce)
end

-- M.compile(schema [, opts]) -> validator
-- validator(value) returns exactly what M.validate(schema, value, opts)
-- returns (cleaned, nil | nil, details). opts.coerce and opts.max_details
-- are fixed at compile time. An invalid schema raises, like M.validate. A
-- validator is not reentrant (it keeps its error list between the closures
-- of one call), which validation never needs: nothing in it calls back into
-- a script.
function M.compile(schema, opts)
  ensure_checked(schema, "compile")
  local st = { details = nil, max = opts and opts.max_details or DEFAULT_MAX_DETAILS, full = false }
  local root = compile_node(schema, "", st, opts and opts.coerce or false)
  local default = schema.default
  return function(value)
    st.details, st.full = nil, false
    local ok, cleaned
    if value == nil then
      if default ~= nil then return copy_value(default, schema), nil end
      ok = st_add(st, "", E_REQUIRED)
    else
      ok, cleaned = root(value, "", "")
    end
    local details = st.details
    st.details = nil
    if not ok then return nil, details or {} end
    return cleaned, nil
  end
end

-- M.partial(schema) -> schema
-- The PATCH form of an object schema: same properties, nothing required and
-- no defaults (an omitted field is never touched). Returns new tables; the
-- property schemas without a default are shared.
function M.partial(schema)
  ensure_checked(schema, "partial")
  if schema.type ~= "object" then error("schema.partial: not an object schema", 2) end
  local out = {}
  for k, v in pairs(schema) do
    if k ~= "required" and k ~= "default" then out[k] = v end
  end
  if schema.properties then
    local props = {}
    for name, sub in pairs(schema.properties) do
      if sub.default ~= nil then
        local copy = {}
        for k, v in pairs(sub) do
          if k ~= "default" then copy[k] = v end
        end
        sub = copy
      end
      props[name] = sub
    end
    out.properties = props
  end
  return out
end

---------------------------------------------------------------------------
-- OpenAPI 3.1 (JSON Schema 2020-12)
---------------------------------------------------------------------------

local OPENAPI_FORMAT = { email = "email", uuid = "uuid", url = "uri", ["date-time"] = "date-time" }
local COPIED = {
  "description", "title", "readOnly", "writeOnly", "deprecated",
  "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "uniqueItems",
}
local EXTENSIONS = {
  trim = "x-trim", lower = "x-lowercase", minBytes = "x-minBytes",
  maxBytes = "x-maxBytes", pattern = "x-lua-pattern",
}

local function convert(s)
  local o = {}
  o.type = s.nullable and new_array({ s.type, "null" }) or s.type
  for _, k in ipairs(COPIED) do
    if s[k] ~= nil then o[k] = s[k] end
  end
  for k, x in pairs(EXTENSIONS) do
    if s[k] ~= nil then o[x] = s[k] end
  end
  if s.format == "date" then
    -- accepts either form; JSON Schema has no single format for that
    o.anyOf = new_array({ { format = "date" }, { format = "date-time" } })
  elseif s.format then
    o.format = OPENAPI_FORMAT[s.format]
  end
  if s.enum then
    local enum = new_array()
    for i, x in ipairs(s.enum) do enum[i] = x end
    -- with type [T, "null"], null must also be listed or enum rejects it
    if s.nullable then enum[#enum + 1] = null end
    o.enum = enum
  end
  if s.default ~= nil then o.default = copy_value(s.default, s) end
  if s.examples then o.examples = copy_value(s.examples, { type = "array", items = s }) end
  if s.type == "array" and s.items then o.items = convert(s.items) end
  if s.type == "object" then
    local props = {}
    for name, sub in pairs(s.properties or {}) do props[name] = convert(sub) end
    o.properties = props
    if s.required and #s.required > 0 then
      local req = new_array()
      for i, name in ipairs(s.required) do req[i] = name end
      o.required = req
    end
    local extra = s.additionalProperties
    if type(extra) == "table" then
      o.additionalProperties = convert(extra)
    else
      o.additionalProperties = extra == true
    end
  end
  return o
end

-- M.to_openapi(schema) -> table
-- A JSON Schema (OpenAPI 3.1 dialect) for schema, as new tables: nullable
-- becomes a type union with "null", url becomes format uri, date becomes an
-- anyOf of date and date-time, additionalProperties is always explicit, and
-- validation-only keywords become extensions (x-trim, x-lowercase,
-- x-minBytes, x-maxBytes, x-lua-pattern). Lists that must encode as JSON
-- arrays (type unions, enum, required, anyOf, array defaults) carry
-- M.array_mt. An invalid schema raises.
function M.to_openapi(schema)
  ensure_checked(schema, "to_openapi")
  return convert(schema)
end

return M
