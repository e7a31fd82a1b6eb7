-- schema.compile against schema.validate: a compiled validator must return
-- exactly what the table walk returns (cleaned value with its array marks,
-- or the same details in the same order) for every schema and input. Random
-- schemas (every keyword, nesting, defaults, nullable, additionalProperties
-- in its three forms) get random inputs built near their shape and then
-- broken (wrong types, null, untrimmed and invalid UTF-8 strings, numeric
-- strings, comma lists, unknown and non-string keys, marked arrays, NaN and
-- infinities), with and without coerce and with small max_details.
-- The seed is fixed (SCHEMA_FUZZ_SEED overrides it); a mismatch names it.
-- luacheck: std lua54+busted

local schema = require("lib.schema")
local cjson = require("cjson")

local null = cjson.null
local random = math.random

local SEED = tonumber(os.getenv("SCHEMA_FUZZ_SEED") or "") or 20261205
local SCHEMAS = tonumber(os.getenv("SCHEMA_FUZZ_SCHEMAS") or "") or 2500
local INPUTS = 24 -- per schema and mode (3 modes): 2,500 x 24 x 3 = 180,000 cases

local function pick(list) return list[random(#list)] end
local function chance(p) return random() < p end

-- Deep equality that also requires the same metatables (array marks) and
-- the same integer/float subtype for numbers.
local function same(a, b, seen)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    return a == b or (a ~= a and b ~= b)
  end
  if type(a) ~= "table" then return a == b end
  if a == b then return true end
  if getmetatable(a) ~= getmetatable(b) then return false end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do
    if not same(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if v == null then return "null" end
  if type(v) ~= "table" then return tostring(v) .. (math.type(v) == "float" and "(f)" or "") end
  if depth > 6 then return "{...}" end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = "[" .. show(k, 7) .. "]=" .. show(x, depth + 1) end
  table.sort(parts)
  local mark = getmetatable(v) and "@" or ""
  return mark .. "{" .. table.concat(parts, ", ") .. "}"
end

---------------------------------------------------------------------------
-- Random schemas
---------------------------------------------------------------------------

local NAMES = { "a", "b", "title", "tags", "x", "due_date", "n" }
local WORDS = { "low", "high", "Open", "done", "a b", "", "é", "x,y" }

local gen_schema

local function maybe_min_max(s, lo, hi, max_value)
  if chance(0.3) then s[lo] = random(0, max_value) end
  if chance(0.3) then s[hi] = random(s[lo] or 0, max_value + 2) end
end

local function gen_string()
  local s = { type = "string" }
  if chance(0.3) then s.trim = true end
  if chance(0.2) then s.lower = true end
  maybe_min_max(s, "minLength", "maxLength", 4)
  maybe_min_max(s, "minBytes", "maxBytes", 6)
  local r = random()
  if r < 0.15 then
    s.enum = { pick(WORDS), pick({ "done", "open", "x" }) }
    if s.enum[1] == s.enum[2] then s.enum[2] = nil end
  elseif r < 0.35 then
    s.format = pick({ "email", "uuid", "url", "date", "date-time" })
  elseif r < 0.45 then
    s.pattern = pick({ "^[a-z]+$", "%d", "^#%x%x%x$", "^[^,]*$" })
  end
  return s
end

local function gen_number(t)
  local s = { type = t }
  local int = t == "integer"
  local function v() return int and random(-5, 20) or (random(-50, 200) / 10) end
  if chance(0.3) then s.minimum = v() end
  if chance(0.3) then
    s.maximum = v()
    if s.minimum and s.maximum < s.minimum then s.minimum, s.maximum = s.maximum, s.minimum end
  end
  if chance(0.15) then
    s.enum = { v(), v(), int and 3.0 or 1 } -- 3.0: an integral float in an integer enum
  end
  return s
end

local function gen_array(depth)
  local s = { type = "array" }
  if chance(0.85) then s.items = gen_schema(depth + 1) end
  maybe_min_max(s, "minItems", "maxItems", 3)
  if chance(0.3) then s.uniqueItems = true end
  return s
end

local function gen_object(depth)
  local s = { type = "object", properties = {} }
  local names = {}
  for _ = 1, random(0, depth > 2 and 2 or 4) do
    local name = pick(NAMES)
    if not s.properties[name] then
      s.properties[name] = gen_schema(depth + 1)
      names[#names + 1] = name
    end
  end
  if chance(0.15) then s.properties = nil end
  if s.properties and #names > 0 and chance(0.5) then
    s.required = {}
    for _, name in ipairs(names) do
      if chance(0.5) then s.required[#s.required + 1] = name end
    end
  end
  local r = random()
  if r < 0.2 then
    s.additionalProperties = true
  elseif r < 0.35 then
    s.additionalProperties = gen_schema(depth + 1)
  elseif r < 0.45 then
    s.additionalProperties = false
  end
  return s
end

local gen_value -- (schema, depth) -> a value near the schema's shape

gen_schema = function(depth)
  depth = depth or 0
  local t
  if depth >= 3 then
    t = pick({ "string", "integer", "number", "boolean" })
  else
    t = pick({ "string", "integer", "number", "boolean", "array", "object", "object" })
  end
  local s
  if t == "string" then s = gen_string()
  elseif t == "integer" or t == "number" then s = gen_number(t)
  elseif t == "boolean" then
    s = { type = "boolean" }
    if chance(0.1) then s.enum = { true } end
  elseif t == "array" then s = gen_array(depth)
  else s = gen_object(depth) end
  if chance(0.2) then s.nullable = true end
  if chance(0.15) then
    local d = gen_value(s, depth, true)
    if d ~= nil then s.default = d end
  end
  if chance(0.1) then s.description = "a field" end
  return s
end

---------------------------------------------------------------------------
-- Random values
---------------------------------------------------------------------------

local STRINGS = {
  "", " ", "abc", "  padded  ", "\u{3000}wide\u{00A0}", "ABC", "Mixed Case", "x,y,z", "1,2,2",
  "a@example.com", "  USER@Example.COM ", "bad@", "a..b@example.com", "123e4567-e89b-12d3-a456-426614174000",
  "123E4567-E89B-12D3-A456-42661417400Z", "https://example.com/a?b#c", "http://10.0.0.1:8080",
  "ftp://x.y", "https://user@host", "2026-02-29", "2024-02-29", "2026-12-05T08:35:00Z",
  "2026-12-05T25:00:00+01:00", "2026-12-05t08:35:00.123-05:30", "#abc", "#ABG", "é", "日本語",
  "\xff\xfe", "nul\0byte", "42", "-7", "+3", "3.5", "1e3", ".5", "5.", "0x10", "true", "false",
  "null", "9223372036854775808", "done", "open", "low", "a b", "x", "\t\n", "ümlaut ",
}

local function gen_scalar()
  local r = random(12)
  if r == 1 then return null end
  if r == 2 then return pick(STRINGS) end
  if r == 3 then return random(-10, 30) end
  if r == 4 then return random(-100, 300) / 10 end
  if r == 5 then return pick({ true, false }) end
  if r == 6 then return pick({ 0 / 0, math.huge, -math.huge, 2 ^ 63, 3.0, -0.0, math.maxinteger }) end
  if r == 7 then return {} end
  if r == 8 then return setmetatable({}, schema.array_mt) end
  if r == 9 then return { 1, 2 } end
  if r == 10 then return { [1] = "a", [3] = "c" } end
  if r == 11 then return { k = 1, [2] = true } end
  return pick(STRINGS) .. pick(STRINGS)
end

gen_value = function(s, depth, for_default)
  depth = depth or 0
  if not for_default and chance(0.12) then return gen_scalar() end
  if s.nullable and chance(0.08) then return null end
  local t = s.type
  if t == "string" then
    if s.enum and chance(0.6) then
      local v = pick(s.enum)
      if chance(0.3) then v = " " .. v:upper() .. " " end
      return v
    end
    return pick(STRINGS)
  elseif t == "integer" then
    if s.enum and chance(0.6) then return pick(s.enum) end
    if not for_default and chance(0.25) then return tostring(random(-5, 25)) end
    return chance(0.85) and random(-5, 25) or random(-50, 250) / 10
  elseif t == "number" then
    if s.enum and chance(0.6) then return pick(s.enum) end
    if not for_default and chance(0.25) then return pick({ "2.5", "-1", "1e1", "x", "" }) end
    return chance(0.5) and random(-5, 25) or random(-50, 250) / 10
  elseif t == "boolean" then
    if not for_default and chance(0.2) then return pick({ "true", "false", "yes" }) end
    return chance(0.5)
  elseif t == "array" then
    if not for_default and chance(0.15) then return pick({ "a,b", "1,2,2", "", "x" }) end
    local out = {}
    for i = 1, random(0, 4) do
      out[i] = s.items and gen_value(s.items, depth + 1, for_default) or gen_scalar()
      if out[i] == nil then return nil end
    end
    if chance(0.3) then setmetatable(out, schema.array_mt) end
    return out
  else
    local out, names = {}, {}
    for name in pairs(s.properties or {}) do names[#names + 1] = name end
    table.sort(names) -- not pairs order, which changes from run to run: the seed decides
    for _, name in ipairs(names) do
      if chance(0.75) then out[name] = gen_value(s.properties[name], depth + 1, for_default) end
    end
    if not for_default then
      if chance(0.2) then out[pick({ "zz", "extra", "\1bad\255key", string.rep("k", 230) })] = gen_scalar() end
      if chance(0.05) then out[1] = "numeric key" end
    end
    return out
  end
end

---------------------------------------------------------------------------
-- The comparison
---------------------------------------------------------------------------

-- Validates with both; returns nil when they agree, else a description.
local function compare(s, validator, value, opts)
  local want_ok, want_v, want_d = pcall(schema.validate, s, value, opts)
  local got_ok, got_v, got_d = pcall(validator, value)
  if want_ok ~= got_ok then
    return "one raised: " .. tostring(want_ok and got_v or want_v)
  end
  if not want_ok then return nil end -- both raised (cannot happen for checked schemas)
  if not same(want_v, got_v) or not same(want_d, got_d) then
    return ("validate: %s %s\ncompiled: %s %s"):format(show(want_v), show(want_d), show(got_v),
      show(got_d))
  end
  return nil
end

describe("schema.compile", function()
  it("matches schema.validate over " .. SCHEMAS * INPUTS * 3 .. " random cases (seed " .. SEED .. ")",
    function()
      math.randomseed(SEED)
      local cases, schemas_used = 0, 0
      for _ = 1, SCHEMAS do
        local s = gen_schema(0)
        -- pcall: a generated default the reference itself cannot judge (a
        -- table with mixed keys under uniqueItems, which no JSON decodes to)
        -- makes check raise; such a schema is skipped.
        local check_ok, good = pcall(schema.check, s)
        if check_ok and good then
          schemas_used = schemas_used + 1
          local modes = { nil, { coerce = true }, { max_details = random(1, 3), coerce = chance(0.5) } }
          for m = 1, 3 do
            local opts = modes[m]
            local validator = schema.compile(s, opts) -- one per schema, reused like dispatch does
            for _ = 1, INPUTS do
              local value = chance(0.03) and nil or gen_value(s, 0)
              local diff = compare(s, validator, value, opts)
              cases = cases + 1
              if diff then
                error(("mismatch (seed %d, case %d)\nschema: %s\nopts: %s\ninput: %s\n%s"):format(SEED,
                  cases, show(s), show(opts), show(value), diff), 0)
              end
            end
          end
        end
      end
      -- most generated schemas are valid, so the run really covers 100k+ cases
      assert.is_true(schemas_used > SCHEMAS * 0.6, "only " .. schemas_used .. " valid schemas")
      assert.is_true(cases >= 100000, "only " .. cases .. " cases")
    end)

  it("reuses one validator across calls without leaking details from a failed call", function()
    local s = { type = "object", properties = { a = { type = "integer" } }, required = { "a" } }
    local v = schema.compile(s)
    local _, d1 = v({})
    assert.same({ { field = "a", message = "is required" } }, d1)
    assert.same({ a = 1 }, (v({ a = 1 })))
    local _, d2 = v({ a = "x" })
    assert.same({ { field = "a", message = "must be an integer" } }, d2)
    assert.are_not.equal(d1, d2)
  end)

  it("copies defaults on every call (a handler may change what it got)", function()
    local s = { type = "object", properties = { tags = { type = "array", items = { type = "string" },
      default = { "x" } } } }
    local v = schema.compile(s)
    local a, b = v({}), v({})
    assert.are_not.equal(a.tags, b.tags)
    assert.equal(schema.array_mt, getmetatable(a.tags))
  end)

  it("raises on an invalid schema, like validate", function()
    assert.has_error(function() schema.compile({ type = "object", properties = { a = { type = "strin" } } }) end)
  end)
end)
