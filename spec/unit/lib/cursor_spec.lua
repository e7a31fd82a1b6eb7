-- Unit specs for scripts/lib/cursor.lua: its base64url (tk.json's, in C)
-- gives the very cursors the Lua version did, and takes back the same ones
-- (malformed: nil, so a 400), including the lenient trailing bits; a
-- cursor round trip, and the checks on decoded values.
-- luacheck: std lua54+busted

local cursor = require("lib.cursor")
local tkjson = require("tk.json")

-- The Lua base64url lib.cursor used before (the reference).
local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local DECODE = {}
for i = 1, #ALPHA do
  DECODE[ALPHA:byte(i)] = i - 1
end

local function ref_encode(s)
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

local function ref_decode(s)
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

local function random_bytes(n)
  local t = {}
  for i = 1, n do
    t[i] = string.char(math.random(0, 255))
  end
  return table.concat(t)
end

-- Strings of base64url characters, and now and then one that is not.
local OTHER = { "=", "+", "/", " ", "\0", "\n", ".", "\xc3", "\xff", "~" }
local function random_text(n)
  local t = {}
  for i = 1, n do
    if math.random(40) == 1 then
      t[i] = OTHER[math.random(#OTHER)]
    else
      local k = math.random(#ALPHA)
      t[i] = ALPHA:sub(k, k)
    end
  end
  return table.concat(t)
end

describe("cursor base64url", function()
  setup(function()
    math.randomseed(20261206)
  end)

  it("encodes every length as the Lua version did", function()
    for n = 0, 200 do
      local s = random_bytes(n)
      assert.equal(ref_encode(s), tkjson.b64url_encode(s))
      assert.equal(s, tkjson.b64url_decode(tkjson.b64url_encode(s)))
    end
  end)

  it("decodes (or refuses) any text as the Lua version did", function()
    for _ = 1, 5000 do
      local s = random_text(math.random(0, 90))
      assert.equal(ref_decode(s), tkjson.b64url_decode(s), s)
    end
  end)

  it("refuses 4k+1 characters, padding and characters outside the alphabet", function()
    assert.is_nil(tkjson.b64url_decode("A"))
    assert.is_nil(tkjson.b64url_decode("AAAAA"))
    assert.is_nil(tkjson.b64url_decode("AA=="))
    assert.is_nil(tkjson.b64url_decode("AB+/"))
    assert.is_nil(tkjson.b64url_decode("AB\0C"))
    assert.equal("", tkjson.b64url_decode(""))
  end)

  it("ignores the bits after the last whole byte, as before", function()
    assert.equal(ref_decode("AB"), tkjson.b64url_decode("AB"))
    assert.equal(ref_decode("AP"), tkjson.b64url_decode("AP"))
    assert.equal(tkjson.b64url_decode("AA"), tkjson.b64url_decode("AP"))
  end)
end)

describe("cursor.encode / cursor.decode", function()
  it("round-trips a sort key and an id", function()
    local v = { "2026-01-15T10:00:00.123Z", "6f9619ff-8b86-d011-b42d-00c04fc964ff" }
    local c = cursor.encode(v)
    assert.equal(ref_encode('["2026-01-15T10:00:00.123Z","6f9619ff-8b86-d011-b42d-00c04fc964ff"]'), c)
    assert.same(v, cursor.decode(c, 2))
    assert.same({ "2026-01-15T10:00:00.123Z", "6f9619ff-8b86-d011-b42d-00c04fc964ff" },
      { cursor.decode_time_id(c) })
  end)

  it("raises a 400 for malformed cursors", function()
    local function status(f, ...)
      local ok, e = pcall(f, ...)
      assert.is_false(ok)
      return e.status, e.code
    end
    assert.same({ 400, "invalid_parameter" }, { status(cursor.decode, "A", 2) })
    assert.same({ 400, "invalid_parameter" }, { status(cursor.decode, "!!!!", 2) })
    assert.same({ 400, "invalid_parameter" }, { status(cursor.decode, cursor.encode({ 1 }), 2) })
    assert.same({ 400, "invalid_parameter" }, { status(cursor.decode, string.rep("A", 1028), 2) })
    assert.same({ 400, "invalid_parameter" },
      { status(cursor.decode_time_id, cursor.encode({ "2026-02-30T10:00:00.000Z", "x" })) })
    assert.same({ 400, "invalid_parameter" },
      { status(cursor.decode_time_id, cursor.encode({ "2026-02-28T10:00:00.000Z", "x" })) })
    assert.same({ 400, "invalid_parameter" },
      { status(cursor.decode_time_id,
        cursor.encode({ "2026-02-30T10:00:00.000Z", "6f9619ff-8b86-d011-b42d-00c04fc964ff" })) })
  end)
end)
