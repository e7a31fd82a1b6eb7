-- Unit specs for scripts/lib/json.lua over tk.json (runtime/lua/l_json.c,
-- loaded from build/lua as a Lua C module): empty arrays versus empty
-- objects at any depth, the input never mutated, json.null both ways, key
-- order (shapes, then "id" first and sorted), no escaped '/', strictness
-- (NaN, Infinity, non-string keys, depth), and decode errors as nil, message.
-- luacheck: std lua54+busted

local json = require("lib.json")
local cjson = require("cjson")

describe("json.encode", function()

  describe("empty tables", function()
    it("encodes an empty json.array as []", function()
      assert.equal("[]", json.encode(json.array()))
      assert.equal("[]", json.encode(json.array({})))
    end)

    it("encodes an empty plain table as {}", function()
      assert.equal("{}", json.encode({}))
    end)

    it("treats any metatable named json.array as an array marker", function()
      assert.equal("[]", json.encode(setmetatable({}, { __name = "json.array" })))
      assert.equal("[]", json.encode(setmetatable({}, json.array_mt)))
    end)

    it("does not treat other metatables as array markers", function()
      assert.equal("{}", json.encode(setmetatable({}, { __name = "something.else" })))
    end)

    it("encodes non-empty marked arrays as arrays", function()
      assert.equal("[1,2,3]", json.encode(json.array({ 1, 2, 3 })))
      assert.equal('["a"]', json.encode(json.array({ "a" })))
    end)
  end)

  describe("nested empty arrays", function()
    it("keeps [] deep inside objects", function()
      assert.equal('{"a":{"b":{"c":[]}}}', json.encode({ a = { b = { c = json.array() } } }))
    end)

    it("keeps [] deep inside arrays", function()
      assert.equal("[[[]]]", json.encode(json.array({ json.array({ json.array() }) })))
      assert.equal('[[],{"x":[]},1]', json.encode({ json.array(), { x = json.array() }, 1 }))
    end)

    it("keeps {} and [] apart side by side", function()
      local s = json.encode({ list = json.array(), obj = {}, n = 1 })
      assert.truthy(s:find('"list":[]', 1, true), s)
      assert.truthy(s:find('"obj":{}', 1, true), s)
      assert.same({ list = {}, obj = {}, n = 1 }, cjson.decode(s))
    end)

    it("handles many empty arrays at several depths in one document", function()
      local doc = {
        tasks = json.array({
          { id = 1, tags = json.array(), meta = { labels = json.array() } },
          { id = 2, tags = json.array({ "x" }), meta = {} },
        }),
        empty = json.array(),
      }
      local s = json.encode(doc)
      assert.falsy(s:find("empty-array", 1, true), s)
      local back = cjson.decode(s)
      assert.same({ 1, 2 }, { back.tasks[1].id, back.tasks[2].id })
      assert.truthy(s:find('"tags":[]', 1, true), s)
      assert.truthy(s:find('"labels":[]', 1, true), s)
      assert.truthy(s:find('"tags":["x"]', 1, true), s)
      assert.truthy(s:find('"meta":{}', 1, true), s)
      assert.truthy(s:find('"empty":[]', 1, true), s)
    end)
  end)

  describe("the input", function()
    it("does not mutate the input table", function()
      local inner = json.array()
      local sub = { c = inner, keep = "me" }
      local t = { a = json.array(), b = sub, n = 5 }
      local a = t.a
      json.encode(t)
      assert.equal(a, t.a)
      assert.equal(sub, t.b)
      assert.equal(inner, t.b.c)
      assert.equal(json.array_mt, getmetatable(t.a))
      assert.equal(json.array_mt, getmetatable(inner))
      assert.is_nil(next(t.a))
      assert.is_nil(next(inner))
      assert.same({ "a", "b", "n" }, (function()
        local ks = {}
        for k in pairs(t) do ks[#ks + 1] = k end
        table.sort(ks)
        return ks
      end)())
      assert.equal("me", sub.keep)
    end)

    it("encodes the same table twice identically", function()
      local t = { a = { b = json.array() } }
      assert.equal(json.encode(t), json.encode(t))
      assert.equal('{"a":{"b":[]}}', json.encode(t))
    end)

    it("encodes shared subtables at every place they appear", function()
      local e = json.array()
      local shared = { k = e }
      local t = { x = e, y = e, z = json.array({ e, e }), p = shared, q = shared }
      local s = json.encode(t)
      assert.truthy(s:find('"x":[]', 1, true), s)
      assert.truthy(s:find('"y":[]', 1, true), s)
      assert.truthy(s:find('"z":[[],[]]', 1, true), s)
      assert.equal(2, select(2, s:gsub('{"k":%[%]}', "")), s)
      assert.is_nil(next(e))
      assert.equal(e, shared.k)
    end)
  end)

  describe("null", function()
    it("encodes json.null as null", function()
      assert.equal("null", json.encode(json.null))
      assert.equal('{"a":null}', json.encode({ a = json.null }))
      assert.equal("[1,null,3]", json.encode(json.array({ 1, json.null, 3 })))
    end)

    it("is cjson.null", function()
      assert.equal(cjson.null, json.null)
    end)
  end)

  describe("scalars and limits", function()
    it("encodes scalars", function()
      assert.equal('"x"', json.encode("x"))
      assert.equal("1", json.encode(1))
      assert.equal("true", json.encode(true))
    end)

    it("raises on nesting deeper than 64", function()
      local deep = {}
      local cur = deep
      for _ = 1, 100 do
        cur.n = {}
        cur = cur.n
      end
      assert.has_error(function() json.encode(deep) end)
    end)

    it("raises on a cyclic table instead of looping", function()
      local t = { a = json.array() }
      t.self = t
      assert.has_error(function() json.encode(t) end)
    end)

    it("raises on values JSON cannot hold", function()
      assert.has_error(function() json.encode({ f = function() end }) end)
    end)
  end)

  describe("key order", function()
    it("writes a shaped object in the shape's order, absent keys skipped", function()
      local shape = json.shape({ "id", "zeta", "alpha", "mid" })
      assert.equal('{"id":1,"zeta":2,"alpha":3}', json.encode(setmetatable({ alpha = 3, zeta = 2, id = 1 }, shape)))
      assert.equal('{"zeta":null}', json.encode(setmetatable({ zeta = json.null }, shape)))
    end)

    it("writes keys a shape does not list after the listed ones, id first then sorted", function()
      local shape = json.shape({ "b", "a" })
      assert.equal('{"b":1,"a":2,"id":0,"c":3,"d":4}',
        json.encode(setmetatable({ d = 4, c = 3, a = 2, b = 1, id = 0 }, shape)))
    end)

    it("writes other objects with id first, then the keys sorted bytewise", function()
      assert.equal('{"id":"x","Z":1,"a":2,"ab":3,"b":[]}',
        json.encode({ b = json.array(), ab = 3, a = 2, Z = 1, id = "x" }))
    end)

    it("gives the same bytes for equal tables built in any order", function()
      local a, b = {}, {}
      for i = 1, 50 do
        a["k" .. i] = i
      end
      for i = 50, 1, -1 do
        b["k" .. i] = i
      end
      assert.equal(json.encode(a), json.encode(b))
    end)

    it("copies the key list: changing it later changes nothing", function()
      local keys = { "b", "a" }
      local shape = json.shape(keys)
      keys[1], keys[2] = "a", "b"
      assert.equal('{"b":1,"a":2}', json.encode(setmetatable({ a = 2, b = 1 }, shape)))
    end)
  end)

  describe("strings and numbers", function()
    it("does not escape '/'", function()
      assert.equal('"</mark> a/b"', json.encode("</mark> a/b"))
    end)

    it("escapes quotes, backslashes and control characters only", function()
      assert.equal([["a\"b\\c\n\t\r\u0001\u001f é"]], json.encode('a"b\\c\n\t\r\1\31 é'))
      assert.equal('"\\b\\f\\u000b\127"', json.encode("\b\f\v\127")) -- DEL is not a control character
    end)

    it("writes integers without a fraction and other numbers with 14 digits", function()
      assert.equal("[3,-7,3,1.5,0.1,1e+20]", json.encode(json.array({ 3, -7, 3.0, 1.5, 0.1, 1e20 })))
      assert.equal(tostring(math.maxinteger), json.encode(math.maxinteger))
    end)

    it("refuses NaN and Infinity", function()
      assert.has_error(function() json.encode({ x = 0 / 0 }) end)
      assert.has_error(function() json.encode(math.huge) end)
      assert.has_error(function() json.encode(-math.huge) end)
    end)

    it("refuses non-string keys in an object", function()
      assert.has_error(function() json.encode({ [1] = "a", [3] = "b" }) end)
      assert.has_error(function() json.encode({ a = 1, [true] = 2 }) end)
    end)
  end)
end)

describe("json.decode", function()
  it("decodes objects and arrays", function()
    assert.same({ a = { 1, 2 }, b = "x" }, json.decode('{"a":[1,2],"b":"x"}'))
  end)

  it("decodes null as json.null, not nil", function()
    local v = json.decode('{"a":null,"b":[null]}')
    assert.equal(json.null, v.a)
    assert.equal(json.null, v.b[1])
    assert.equal(json.null, json.decode("null"))
  end)

  it("returns nil, message on invalid JSON", function()
    for _, bad in ipairs({ "{", "{bad}", "[1,]", "", "nul", '{"a":1}x', "'single'" }) do
      local v, err = json.decode(bad)
      assert.is_nil(v, bad)
      assert.is_string(err, bad)
      assert.truthy(#err > 0)
    end
  end)

  it("refuses raw control characters inside strings (RFC 8259), with their position", function()
    for c = 0, 31 do
      local text = '{"a":"x' .. string.char(c) .. 'y"}'
      local v, err = json.decode(text)
      assert.is_nil(v, "U+" .. c)
      assert.truthy(err:find("control character", 1, true), err)
      assert.truthy(err:find("at character 8", 1, true), err)
    end
    assert.is_nil((json.decode('{"k\ney":1}')))
    assert.is_nil((json.decode('["a", "b\tc"]')))
    assert.is_nil((json.decode('{"a":"\\"\t}'))) -- the escaped quote does not end the string
  end)

  it("refuses control characters other than tab, LF and CR between tokens", function()
    for _, c in ipairs({ 0, 1, 8, 11, 12, 27, 31 }) do
      assert.is_nil((json.decode('{"a":' .. string.char(c) .. '1}')), "U+" .. c)
    end
  end)

  it("accepts tab, LF and CR between tokens, and escaped control characters in strings", function()
    local v = assert(json.decode('{\r\n\t"a" :\t[1,\n 2],\r\n "b": "x\\ty\\n\\u0001"\n}\n'))
    assert.same({ 1, 2 }, v.a)
    assert.equal("x\ty\n\1", v.b)
    assert.equal("a\\", json.decode('"a\\\\"')) -- a string ending in an escaped backslash
    assert.same({ "\\", "\t" }, json.decode('[\n"\\\\",\t"\\t"\n]'))
  end)

  it("returns nil, message for a non-string", function()
    local v, err = json.decode(nil)
    assert.is_nil(v)
    assert.is_string(err)
  end)

  it("strips the file:line prefix from messages", function()
    local _, err = json.decode("{")
    assert.falsy(err:find("^[^:]*%.lua:%d+: "), err)
  end)

  it("refuses documents nested deeper than 64", function()
    local v, err = json.decode(string.rep("[", 100) .. string.rep("]", 100))
    assert.is_nil(v)
    assert.is_string(err)
  end)
end)

describe("json.array", function()
  it("marks and returns the table it was given", function()
    local t = { 1, 2 }
    assert.equal(t, json.array(t))
    assert.equal(json.array_mt, getmetatable(t))
  end)

  it("makes a new empty array without an argument", function()
    local a = json.array()
    assert.equal(json.array_mt, getmetatable(a))
    assert.is_nil(next(a))
  end)

  it("has a metatable named json.array", function()
    assert.equal("json.array", json.array_mt.__name)
  end)
end)

describe("json.nullable", function()
  it("turns nil into json.null", function()
    assert.equal(json.null, json.nullable(nil))
    assert.equal(json.null, json.nullable())
  end)

  it("passes every other value through", function()
    assert.equal(false, json.nullable(false))
    assert.equal(0, json.nullable(0))
    assert.equal("", json.nullable(""))
    assert.equal(json.null, json.nullable(json.null))
    local t = {}
    assert.equal(t, json.nullable(t))
  end)

  it("encodes as null in a document", function()
    assert.equal('{"v":null}', json.encode({ v = json.nullable(nil) }))
  end)
end)
