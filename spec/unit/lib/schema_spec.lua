-- Unit specs for scripts/lib/schema.lua: validation of every keyword and
-- message, coerce mode, schema checking and the OpenAPI conversion.
-- luacheck: std lua54+busted

local schema = require("lib.schema")
local cjson = require("cjson")

local null = cjson.null
local validate = schema.validate

-- Validates a single value under { type = "object", properties = { v = s } }
-- so field paths are "v"; returns cleaned value or the details.
local function one(s, v, opts)
  local cleaned, details = validate({ type = "object", properties = { v = s } }, { v = v }, opts)
  if cleaned then return cleaned.v, nil end
  return nil, details
end

local function message_of(s, v, opts)
  local cleaned, details = one(s, v, opts)
  assert.is_nil(cleaned)
  assert.equal(1, #details)
  assert.equal("v", details[1].field)
  return details[1].message
end

local function accepts(s, v, opts)
  local cleaned, details = one(s, v, opts)
  assert.is_nil(details)
  return cleaned
end

describe("schema.validate", function()

  describe("top level", function()
    local s = { type = "object", properties = { a = { type = "string" } } }

    it("rejects a non-object body with field \"\"", function()
      for _, body in ipairs({ "x", 5, true, { 1, 2 }, null }) do
        local cleaned, details = validate(s, body)
        assert.is_nil(cleaned)
        assert.same({ { field = "", message = body == null and "must not be null" or "must be an object" } },
          details)
      end
    end)

    it("treats a missing body as required unless the schema has a default", function()
      assert.same({ { field = "", message = "is required" } }, select(2, validate(s, nil)))
      local with_default = { type = "object", properties = {}, default = {} }
      assert.same({}, (validate(with_default, nil)))
    end)

    it("accepts an empty table as an empty object", function()
      assert.same({}, (validate(s, {})))
    end)

    it("rejects a table marked as a JSON array where an object is expected", function()
      local _, details = validate(s, setmetatable({}, schema.array_mt))
      assert.same({ { field = "", message = "must be an object" } }, details)
    end)

    it("returns a new table and never mutates the input", function()
      local t = { type = "object", properties = {
        name = { type = "string", trim = true },
        tags = { type = "array", items = { type = "string", lower = true } },
        n = { type = "integer", default = 3 },
      } }
      local input = { name = "  x  ", tags = { "A" } }
      local out = assert(validate(t, input))
      assert.same({ name = "x", tags = { "a" }, n = 3 }, out)
      assert.same({ name = "  x  ", tags = { "A" } }, input)
      assert.are_not.equal(input, out)
      assert.are_not.equal(input.tags, out.tags)
    end)
  end)

  describe("type checks", function()
    it("reports the expected type for each kind", function()
      assert.equal("must be a string", message_of({ type = "string" }, 5))
      assert.equal("must be an integer", message_of({ type = "integer" }, "5"))
      assert.equal("must be a number", message_of({ type = "number" }, "5"))
      assert.equal("must be a boolean", message_of({ type = "boolean" }, "true"))
      assert.equal("must be an array", message_of({ type = "array" }, "a"))
      assert.equal("must be an array", message_of({ type = "array" }, { a = 1 }))
      assert.equal("must be an object", message_of({ type = "object" }, { 1 }))
      assert.equal("must be an object", message_of({ type = "object" }, "x"))
    end)

    it("rejects a Lua table with holes as an array", function()
      assert.equal("must be an array", message_of({ type = "array" }, { 1, nil, 3 }))
    end)
  end)

  describe("null, absent and default", function()
    local s = { type = "object", properties = {
      title = { type = "string" },
      note = { type = "string", nullable = true },
      priority = { type = "string", default = "medium" },
      due = { type = "string", nullable = true, default = null },
      tags = { type = "array", items = { type = "string" }, default = {} },
    } }

    it("rejects null for a non-nullable field", function()
      local _, details = validate(s, { title = null })
      assert.same({ { field = "title", message = "must not be null" } }, details)
    end)

    it("keeps null for a nullable field", function()
      local out = assert(validate(s, { note = null }))
      assert.equal(null, out.note)
    end)

    it("leaves absent fields absent when there is no default", function()
      local out = assert(validate(s, {}))
      assert.is_nil(out.title)
      assert.is_nil(out.note)
    end)

    it("applies defaults only to absent fields, never to null ones", function()
      local out = assert(validate(s, {}))
      assert.equal("medium", out.priority)
      assert.equal(null, out.due)
      out = assert(validate(s, { due = null, priority = "high" }))
      assert.equal(null, out.due)
      assert.equal("high", out.priority)
      local _, details = validate(s, { priority = null })
      assert.same({ { field = "priority", message = "must not be null" } }, details)
    end)

    it("gives each call its own copy of a table default, marked as an array", function()
      local a = assert(validate(s, {}))
      local b = assert(validate(s, {}))
      assert.same({}, a.tags)
      assert.are_not.equal(a.tags, b.tags)
      assert.are_not.equal(s.properties.tags.default, a.tags)
      assert.equal(schema.array_mt, getmetatable(a.tags))
    end)
  end)

  describe("required and unknown fields", function()
    local s = { type = "object", required = { "email", "password" }, properties = {
      email = { type = "string" }, password = { type = "string" }, name = { type = "string" },
    } }

    it("reports every missing required field", function()
      local _, details = validate(s, {})
      assert.same({
        { field = "email", message = "is required" },
        { field = "password", message = "is required" },
      }, details)
    end)

    it("rejects unknown fields by default, naming each", function()
      local _, details = validate(s, { email = "a", password = "b", foo = 1, bar = 2 })
      assert.same({
        { field = "bar", message = "is not allowed" },
        { field = "foo", message = "is not allowed" },
      }, details)
    end)

    it("collects all errors, not only the first", function()
      local _, details = validate(s, { email = 5, foo = true })
      assert.same({
        { field = "email", message = "must be a string" },
        { field = "password", message = "is required" },
        { field = "foo", message = "is not allowed" },
      }, details)
    end)

    it("keeps unknown fields with additionalProperties = true", function()
      local open = { type = "object", properties = {}, additionalProperties = true }
      assert.same({ x = { 1, 2 }, y = "z" }, (validate(open, { x = { 1, 2 }, y = "z" })))
    end)

    it("validates unknown fields against an additionalProperties schema", function()
      local map = { type = "object", additionalProperties = { type = "integer", minimum = 0 } }
      assert.same({ a = 1, b = 2 }, (validate(map, { a = 1.0, b = 2 })))
      local _, details = validate(map, { a = -1 })
      assert.same({ { field = "a", message = "must be at least 0" } }, details)
    end)

    it("makes unknown field names safe to echo", function()
      local _, details = validate(s, { email = "a", password = "b", ["x\0\255y"] = 1 })
      assert.same({ { field = "x??y", message = "is not allowed" } }, details)
    end)

    it("stops after max_details details", function()
      local body = {}
      for i = 1, 500 do body["f" .. i] = i end
      local _, details = validate(s, body)
      assert.equal(100, #details)
      _, details = validate(s, body, { max_details = 3 })
      assert.equal(3, #details)
    end)
  end)

  describe("strings", function()
    it("counts length in Unicode code points", function()
      local s = { type = "string", minLength = 5, maxLength = 5 }
      assert.equal("héllo", accepts(s, "héllo"))
      assert.equal("must be at least 5 characters", message_of(s, "héll"))
      local emoji = { type = "string", maxLength = 1 }
      assert.equal("😀", accepts(emoji, "😀"))
      assert.equal("must be at most 1 character", message_of(emoji, "😀😀"))
    end)

    it("uses singular and plural in length messages", function()
      assert.equal("must be at least 1 character", message_of({ type = "string", minLength = 1 }, ""))
      assert.equal("must be at most 100 characters",
        message_of({ type = "string", maxLength = 100 }, string.rep("a", 101)))
    end)

    it("rejects invalid UTF-8", function()
      local s = { type = "string" }
      assert.equal("must be valid UTF-8", message_of(s, "abc\255"))
      assert.equal("must be valid UTF-8", message_of(s, "\xC0\xAF")) -- overlong
      assert.equal("must be valid UTF-8", message_of(s, "\xED\xA0\x80")) -- surrogate
    end)

    it("rejects NUL characters", function()
      assert.equal("must not contain NUL characters", message_of({ type = "string" }, "a\0b"))
    end)

    it("counts bytes with minBytes and maxBytes", function()
      local s = { type = "string", minBytes = 8, maxBytes = 72 }
      assert.equal("must be at least 8 bytes", message_of(s, "1234567"))
      assert.equal("must be at most 72 bytes", message_of(s, string.rep("é", 37))) -- 74 bytes
      assert.equal(string.rep("é", 36), accepts(s, string.rep("é", 36)))
      assert.equal("must be at least 1 byte", message_of({ type = "string", minBytes = 1 }, ""))
    end)

    it("trims ASCII and Unicode white space before checking length", function()
      local s = { type = "string", trim = true, minLength = 1, maxLength = 3 }
      assert.equal("abc", accepts(s, "  abc \t\n"))
      assert.equal("abc", accepts(s, "\u{00A0}\u{3000}abc\u{2003}\u{FEFF}"))
      assert.equal("a b", accepts(s, " a b "))
      assert.equal("must be at least 1 character", message_of(s, " \u{2028} "))
      assert.equal("must be at most 3 characters", message_of(s, "  abcd  "))
      assert.equal("é", accepts(s, "é")) -- multi-byte, nothing to trim
    end)

    it("does not trim without trim = true", function()
      assert.equal(" a ", accepts({ type = "string" }, " a "))
    end)

    it("lower-cases ASCII letters only", function()
      assert.equal("ab@x.io", accepts({ type = "string", lower = true }, "AB@X.io"))
      assert.equal("éÉ", accepts({ type = "string", lower = true }, "éÉ"))
    end)

    it("checks enum with a message listing the choices", function()
      local s = { type = "string", enum = { "low", "medium", "high" } }
      assert.equal("high", accepts(s, "high"))
      assert.equal("must be one of: low, medium, high", message_of(s, "urgent"))
    end)

    it("checks enum after trimming and lower-casing", function()
      local s = { type = "string", trim = true, lower = true, enum = { "low" } }
      assert.equal("low", accepts(s, " LOW "))
    end)

    it("checks a Lua pattern", function()
      local s = { type = "string", pattern = "^[a-z]+$" }
      assert.equal("abc", accepts(s, "abc"))
      assert.equal("is not in the expected format", message_of(s, "ab1"))
    end)
  end)

  describe("formats", function()
    local function check_format(format, good, bad, message)
      local s = { type = "string", format = format }
      for _, v in ipairs(good) do
        local out, details = one(s, v)
        assert(out == v, format .. " should accept " .. v .. ": " .. tostring(details and details[1].message))
      end
      for _, v in ipairs(bad) do
        local out, details = one(s, v)
        assert(out == nil, format .. " should reject " .. v)
        assert.equal(message, details[1].message)
      end
    end

    it("email", function()
      check_format("email",
        { "a@b.co", "first.last+tag@sub.example.org", "x_y-z@xn--bcher-kva.de", "A@B.IO" },
        { "", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.io", ".a@b.co", "a.@b.co", "a..b@c.io",
          "a@-b.co", "a@b-.co", "a@b..co", "a@b.1com", "a@b.123", "é@b.co", "a@b.co.",
          string.rep("a", 65) .. "@b.co", "a@" .. string.rep("b", 64) .. ".co" },
        "must be a valid email address")
    end)

    it("uuid", function()
      check_format("uuid",
        { "123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000",
          "00000000-0000-0000-0000-000000000000" },
        { "", "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400",
          "123e4567-e89b-12d3-a456-4266141740000", "g23e4567-e89b-12d3-a456-426614174000",
          "{123e4567-e89b-12d3-a456-426614174000}" },
        "must be a valid UUID")
    end)

    it("url (http and https with a host)", function()
      check_format("url",
        { "http://example.com", "https://example.com/a/b?c=d&e=%20#frag", "HTTPS://Example.COM:8443/",
          "http://127.0.0.1:8080/x", "http://[::1]/", "http://localhost/avatar.png", "http://1.2.3.4/" },
        { "", "example.com", "ftp://example.com/", "javascript:alert(1)", "http://", "http:///path",
          "http://exa mple.com/", "http://example.com/a b", "https://user:pw@example.com/",
          "http://example.com:0/", "http://example.com:99999/", "http://example.com:/",
          "http://-bad.com/", "http://example.com/%zz", "http://exämple.com/", "//example.com/",
          "http://example.com/<script>", "http://[zz]/", "http://256.1.1.1/", "http://1.2.3/", "http://example.123/" },
        "must be a valid URL")
    end)

    it("date accepts a plain date or a date-time, with real calendar days", function()
      check_format("date",
        { "2026-01-15", "2024-02-29", "2000-02-29", "2026-01-15T10:00:00.000Z", "2026-01-15T10:00:00+02:00" },
        { "", "2026-1-15", "2026-13-01", "2026-00-10", "2026-01-32", "2026-02-29", "1900-02-29",
          "2026-04-31", "0000-01-01", "26-01-15", "2026-01-15T", "2026-01-15 10:00:00Z", "tomorrow",
          "2026-01-15T24:00:00Z" },
        "must be a valid date")
    end)

    it("date-time follows RFC 3339", function()
      check_format("date-time",
        { "2026-01-15T10:00:00.000Z", "2026-01-15T10:00:00Z", "2026-01-15t10:00:00z",
          "2026-01-15T23:59:59.123456-05:30" },
        { "", "2026-01-15", "2026-01-15T10:00Z", "2026-01-15T10:00:00", "2026-01-15T25:00:00Z",
          "2026-01-15T10:60:00Z", "2026-01-15T10:00:60Z", "2026-02-30T10:00:00Z",
          "2026-01-15T10:00:00+24:00", "2026-01-15T10:00:00+0200", "2026-01-15T10:00:00.Z" },
        "must be a valid date-time")
    end)

    it("checks the format after trimming", function()
      local s = { type = "string", format = "email", trim = true, lower = true, maxLength = 254 }
      assert.equal("ann@example.com", accepts(s, "  Ann@Example.COM "))
    end)
  end)

  describe("integers and numbers", function()
    it("turns integral floats into Lua integers", function()
      local out = accepts({ type = "integer" }, 5.0)
      assert.equal(5, out)
      assert.equal("integer", math.type(out))
    end)

    it("rejects fractions, NaN and infinities as integers", function()
      local s = { type = "integer" }
      assert.equal("must be an integer", message_of(s, 5.5))
      assert.equal("must be an integer", message_of(s, 0 / 0))
      assert.equal("must be an integer", message_of(s, math.huge))
      assert.equal("must be an integer", message_of(s, 1e300))
    end)

    it("checks minimum and maximum", function()
      local s = { type = "integer", minimum = 1, maximum = 100 }
      assert.equal(1, accepts(s, 1))
      assert.equal(100, accepts(s, 100))
      assert.equal("must be at least 1", message_of(s, 0))
      assert.equal("must be at most 100", message_of(s, 101))
      local n = { type = "number", minimum = 0.5, maximum = 2.5 }
      assert.equal(1.5, accepts(n, 1.5))
      assert.equal("must be at least 0.5", message_of(n, 0.25))
      assert.equal("must be at most 2.5", message_of(n, 3))
    end)

    it("accepts numbers but not NaN or infinities", function()
      assert.equal(2.5, accepts({ type = "number" }, 2.5))
      assert.equal(3, accepts({ type = "number" }, 3))
      assert.equal("must be a number", message_of({ type = "number" }, 0 / 0))
      assert.equal("must be a number", message_of({ type = "number" }, -math.huge))
    end)

    it("checks enum on integers", function()
      local s = { type = "integer", enum = { 1, 2, 3 } }
      assert.equal(2, accepts(s, 2.0))
      assert.equal("must be one of: 1, 2, 3", message_of(s, 4))
    end)
  end)

  describe("booleans", function()
    it("accepts true and false only", function()
      assert.is_false(accepts({ type = "boolean" }, false))
      assert.is_true(accepts({ type = "boolean" }, true))
      assert.equal("must be a boolean", message_of({ type = "boolean" }, 1))
    end)
  end)

  describe("arrays", function()
    local tags = { type = "array", maxItems = 3, minItems = 1, uniqueItems = true,
      items = { type = "string", trim = true, minLength = 1, maxLength = 5 } }

    it("validates and cleans each item", function()
      local out = accepts(tags, { " a ", "b" })
      assert.same({ "a", "b" }, out)
      assert.equal(schema.array_mt, getmetatable(out))
    end)

    it("names failing items with 0-based indexes, one detail each", function()
      local _, details = one(tags, { "ok", 5, "toolong" })
      assert.same({
        { field = "v[1]", message = "must be a string" },
        { field = "v[2]", message = "must be at most 5 characters" },
      }, details)
    end)

    it("checks minItems and maxItems", function()
      assert.equal("must have at least 1 item", message_of(tags, {}))
      assert.equal("must have at most 3 items", message_of(tags, { "a", "b", "c", "d" }))
      assert.equal("must have at least 2 items", message_of({ type = "array", minItems = 2 }, { 1 }))
    end)

    it("rejects duplicates after cleaning", function()
      assert.equal("must not contain duplicates", message_of(tags, { "a", "b", " a" }))
      local nums = { type = "array", items = { type = "integer" }, uniqueItems = true }
      assert.equal("must not contain duplicates", message_of(nums, { 1, 1.0 }))
      local objs = { type = "array", uniqueItems = true,
        items = { type = "object", properties = { x = { type = "integer" }, y = { type = "string" } } } }
      assert.equal("must not contain duplicates", message_of(objs, { { x = 1, y = "a" }, { y = "a", x = 1 } }))
      assert.same({ { x = 1 }, { x = 2 } }, accepts(objs, { { x = 1 }, { x = 2 } }))
    end)

    it("rejects null items unless the item schema is nullable", function()
      local _, details = one({ type = "array", items = { type = "string" } }, { "a", null })
      assert.same({ { field = "v[1]", message = "must not be null" } }, details)
      local out = accepts({ type = "array", items = { type = "string", nullable = true } }, { null })
      assert.equal(null, out[1])
    end)

    it("accepts any items without an items schema", function()
      assert.same({ 1, "a", true }, accepts({ type = "array" }, { 1, "a", true }))
    end)

    it("validates nested arrays of strings", function()
      local grid = { type = "array", items = { type = "array", items = { type = "string", maxLength = 2 } } }
      assert.same({ { "a" }, { "b", "cd" } }, accepts(grid, { { "a" }, { "b", "cd" } }))
      local _, details = one(grid, { { "a" }, { "b", "cde" }, "x" })
      assert.same({
        { field = "v[1][1]", message = "must be at most 2 characters" },
        { field = "v[2]", message = "must be an array" },
      }, details)
    end)
  end)

  describe("nested objects", function()
    local s = { type = "object", required = { "author" }, properties = {
      author = { type = "object", required = { "name" }, properties = {
        name = { type = "string", minLength = 1 },
        links = { type = "array", items = { type = "object",
          properties = { url = { type = "string", format = "url" } } } },
      } },
    } }

    it("builds dotted and indexed field paths", function()
      local _, details = validate(s, { author = { links = { { url = "x" }, { nope = 1 } }, extra = 1 } })
      assert.same({
        { field = "author.links[0].url", message = "must be a valid URL" },
        { field = "author.links[1].nope", message = "is not allowed" },
        { field = "author.name", message = "is required" },
        { field = "author.extra", message = "is not allowed" },
      }, details)
    end)

    it("returns the cleaned nested value", function()
      local out = assert(validate(s, { author = { name = "A", links = { { url = "https://a.io" } } } }))
      assert.same({ author = { name = "A", links = { { url = "https://a.io" } } } }, out)
    end)
  end)

  describe("coerce mode (query strings)", function()
    local q = { type = "object", properties = {
      limit = { type = "integer", minimum = 1, maximum = 100, default = 20 },
      ratio = { type = "number" },
      unread = { type = "boolean" },
      status = { type = "array", items = { type = "string", enum = { "todo", "done" } } },
      q = { type = "string" },
    } }

    it("parses integers, numbers and booleans from strings", function()
      local out = assert(validate(q, { limit = "10", ratio = "0.5", unread = "true", q = "42" }, { coerce = true }))
      assert.same({ limit = 10, ratio = 0.5, unread = true, q = "42" }, out)
      assert.equal("integer", math.type(out.limit))
      out = assert(validate(q, { unread = "false", ratio = "-1e2" }, { coerce = true }))
      assert.is_false(out.unread)
      assert.equal(-100, out.ratio)
      assert.equal(20, out.limit)
    end)

    it("reports bad values with the type message", function()
      local _, details = validate(q, { limit = "ten", ratio = "0x10", unread = "yes" }, { coerce = true })
      assert.same({
        { field = "limit", message = "must be an integer" },
        { field = "ratio", message = "must be a number" },
        { field = "unread", message = "must be a boolean" },
      }, details)
      for _, bad in ipairs({ "", "1.5", " 1", "1e3", "99999999999999999999" }) do
        _, details = validate(q, { limit = bad }, { coerce = true })
        assert.same({ { field = "limit", message = "must be an integer" } }, details)
      end
      for _, bad in ipairs({ "inf", "nan", "1e999", "." }) do
        _, details = validate(q, { ratio = bad }, { coerce = true })
        assert.same({ { field = "ratio", message = "must be a number" } }, details)
      end
    end)

    it("still checks ranges after parsing", function()
      local _, details = validate(q, { limit = "0" }, { coerce = true })
      assert.same({ { field = "limit", message = "must be at least 1" } }, details)
    end)

    it("splits comma-separated lists for array fields", function()
      local out = assert(validate(q, { status = "todo,done" }, { coerce = true }))
      assert.same({ "todo", "done" }, out.status)
      local _, details = validate(q, { status = "todo,nope" }, { coerce = true })
      assert.same({ { field = "status[1]", message = "must be one of: todo, done" } }, details)
    end)

    it("does not parse strings without coerce", function()
      local _, details = validate(q, { limit = "10" })
      assert.same({ { field = "limit", message = "must be an integer" } }, details)
    end)
  end)

  it("raises on an invalid schema, naming the problem", function()
    assert.has_error(function() validate({ type = "strng" }, "x") end,
      "schema.validate: invalid schema: schema: unknown type 'strng' "
        .. "(expected string, integer, number, boolean, array or object)")
  end)
end)

describe("schema.check", function()
  local function err_of(s)
    local ok, err = schema.check(s)
    assert.is_nil(ok)
    assert.is_string(err)
    return err
  end

  it("accepts a good schema", function()
    assert.is_true(schema.check({ type = "object", required = { "a" }, properties = {
      a = { type = "string", minLength = 1, maxLength = 10, trim = true, format = "email",
        description = "x", readOnly = false },
      b = { type = "array", items = { type = "integer", minimum = 0 }, uniqueItems = true, default = {} },
      c = { type = "string", enum = { "x", "y" }, default = "x", nullable = true },
      d = { type = "string", pattern = "^%d+$" },
    } }))
  end)

  it("catches a misspelt keyword with its path", function()
    assert.equal("schema.properties.title: unknown keyword 'maxLenght'",
      err_of({ type = "object", properties = { title = { type = "string", maxLenght = 5 } } }))
  end)

  it("catches keywords that do not fit the type", function()
    assert.equal("schema: keyword 'maxLength' does not apply to type integer",
      err_of({ type = "integer", maxLength = 5 }))
    assert.equal("schema: keyword 'items' does not apply to type object",
      err_of({ type = "object", items = { type = "string" } }))
  end)

  it("catches a missing or unknown type", function()
    assert.equal("schema: missing 'type'", err_of({ minLength = 1 }))
    assert.matches("unknown type 'int'", err_of({ type = "int" }), 1, true)
    assert.equal("schema.items: must be a schema table", err_of({ type = "array", items = "string" }))
  end)

  it("catches an unknown format", function()
    assert.matches("schema.format: unknown format 'e-mail'", err_of({ type = "string", format = "e-mail" }), 1, true)
    assert.matches("unknown format 'uri'", err_of({ type = "string", format = "uri" }), 1, true)
  end)

  it("catches bad keyword values", function()
    assert.equal("schema.maxLength: must be a non-negative integer", err_of({ type = "string", maxLength = -1 }))
    assert.equal("schema.minItems: must be a non-negative integer", err_of({ type = "array", minItems = 1.5 }))
    assert.equal("schema.trim: must be a boolean", err_of({ type = "string", trim = "yes" }))
    assert.equal("schema.minimum: must be a number", err_of({ type = "integer", minimum = "1" }))
    assert.equal("schema.description: must be a string", err_of({ type = "integer", description = 1 }))
    assert.equal("schema.enum: must be a non-empty list", err_of({ type = "string", enum = {} }))
    assert.equal("schema.enum[1]: must be a string", err_of({ type = "string", enum = { "a", 1 } }))
    assert.equal("schema.additionalProperties: must be a boolean or a schema",
      err_of({ type = "object", additionalProperties = "no" }))
    assert.matches("schema.pattern: bad Lua pattern", err_of({ type = "string", pattern = "[a-" }), 1, true)
  end)

  it("catches required names that are not properties", function()
    assert.equal("schema.required: 'emial' is not in properties",
      err_of({ type = "object", required = { "emial" }, properties = { email = { type = "string" } } }))
    assert.equal("schema.required: 'a' is listed twice",
      err_of({ type = "object", required = { "a", "a" }, properties = { a = { type = "string" } } }))
  end)

  it("catches min greater than max", function()
    assert.equal("schema: minLength is greater than maxLength",
      err_of({ type = "string", minLength = 5, maxLength = 2 }))
    assert.equal("schema: minimum is greater than maximum", err_of({ type = "integer", minimum = 5, maximum = 2 }))
  end)

  it("catches a default that fails its own schema", function()
    assert.equal("schema.properties.p.default: must be one of: low, high",
      err_of({ type = "object", properties = { p = { type = "string", enum = { "low", "high" }, default = "mid" } } }))
    assert.equal("schema.default: must not be null", err_of({ type = "string", default = null }))
  end)

  it("catches a schema that contains itself", function()
    local s = { type = "array" }
    s.items = s
    assert.equal("schema.items: schema refers to itself", err_of(s))
  end)

  it("reports every problem at once, in the same order every time", function()
    local want = "schema.properties.alpha.maxLength: must be a non-negative integer; "
      .. "schema.properties.beta: unknown keyword 'minLenght'; "
      .. "schema.properties.gamma.format: unknown format 'mail' (expected email, uuid, url, date or date-time); "
      .. "schema.properties.gamma: minLength is greater than maxLength; "
      .. "schema.required: 'delta' is not in properties"
    for round = 1, 30 do
      -- properties built in a different insertion order each round: hash order varies
      local props, names = {}, { "gamma", "alpha", "beta", "zeta" }
      for i = 1, #names do
        local name = names[(i + round) % #names + 1]
        props[name] = ({
          alpha = { type = "string", maxLength = -1 },
          beta = { type = "string", minLenght = 2 },
          gamma = { type = "string", format = "mail", minLength = 3, maxLength = 1 },
          zeta = { type = "integer" },
        })[name]
      end
      for i = 1, round do
        props["pad" .. i] = { type = "boolean" }
      end
      local ok, err, errs = schema.check({ type = "object", required = { "alpha", "delta" },
        properties = props })
      assert.is_nil(ok)
      assert.are.equal(want, err)
      assert.are.equal(5, #errs)
    end
  end)

  it("allows one sub-schema to be shared by several properties", function()
    local id = { type = "string", format = "uuid" }
    assert.is_true(schema.check({ type = "object", properties = { a = id, b = id } }))
  end)
end)

describe("schema.partial", function()
  it("drops required and defaults for PATCH bodies", function()
    local create = { type = "object", required = { "title" }, properties = {
      title = { type = "string", minLength = 1 },
      status = { type = "string", enum = { "todo", "done" }, default = "todo" },
    } }
    local patch = schema.partial(create)
    assert.same({}, (validate(patch, {})))
    local _, details = validate(patch, { title = "", status = "x" })
    assert.same({
      { field = "status", message = "must be one of: todo, done" },
      { field = "title", message = "must be at least 1 character" },
    }, details)
    assert.same({ "title" }, create.required)
    assert.equal("todo", create.properties.status.default)
  end)
end)

describe("schema.to_openapi", function()
  local register = { type = "object", required = { "email", "password", "name" }, properties = {
    email = { type = "string", format = "email", maxLength = 254, trim = true, lower = true,
      description = "Login e-mail; stored lower-cased" },
    password = { type = "string", minBytes = 8, maxBytes = 72, writeOnly = true },
    name = { type = "string", minLength = 1, maxLength = 100, trim = true },
  } }

  it("converts a realistic schema (register)", function()
    local o = schema.to_openapi(register)
    assert.same({
      type = "object",
      additionalProperties = false,
      required = { "email", "password", "name" },
      properties = {
        email = { type = "string", format = "email", maxLength = 254, ["x-trim"] = true,
          ["x-lowercase"] = true, description = "Login e-mail; stored lower-cased" },
        password = { type = "string", ["x-minBytes"] = 8, ["x-maxBytes"] = 72, writeOnly = true },
        name = { type = "string", minLength = 1, maxLength = 100, ["x-trim"] = true },
      },
    }, o)
    assert.equal(schema.array_mt, getmetatable(o.required))
    assert.equal("json.array", schema.array_mt.__name)
  end)

  it("encodes to the expected JSON", function()
    local o = schema.to_openapi({ type = "object", properties = { name = { type = "string" } } })
    assert.same({ type = "object", additionalProperties = false, properties = { name = { type = "string" } } },
      cjson.decode(cjson.encode(o)))
  end)

  it("turns nullable into a type union and adds null to enum", function()
    local o = schema.to_openapi({ type = "string", nullable = true, enum = { "a", "b" } })
    assert.same({ "string", "null" }, o.type)
    assert.equal(schema.array_mt, getmetatable(o.type))
    assert.same({ "a", "b", null }, o.enum)
    assert.equal(schema.array_mt, getmetatable(o.enum))
  end)

  it("maps formats to JSON Schema names", function()
    assert.equal("uri", schema.to_openapi({ type = "string", format = "url" }).format)
    assert.equal("uuid", schema.to_openapi({ type = "string", format = "uuid" }).format)
    assert.equal("date-time", schema.to_openapi({ type = "string", format = "date-time" }).format)
    local d = schema.to_openapi({ type = "string", format = "date" })
    assert.is_nil(d.format)
    assert.same({ { format = "date" }, { format = "date-time" } }, d.anyOf)
    assert.equal(schema.array_mt, getmetatable(d.anyOf))
  end)

  it("moves the Lua pattern into an extension", function()
    local o = schema.to_openapi({ type = "string", pattern = "^%a+$" })
    assert.is_nil(o.pattern)
    assert.equal("^%a+$", o["x-lua-pattern"])
  end)

  it("converts arrays, numbers, defaults and additionalProperties", function()
    local o = schema.to_openapi({ type = "object", additionalProperties = { type = "integer" }, properties = {
      tags = { type = "array", items = { type = "string", maxLength = 50 }, maxItems = 20, minItems = 0,
        uniqueItems = true, default = {} },
      limit = { type = "integer", minimum = 1, maximum = 100, default = 20 },
      ratio = { type = "number", minimum = 0.5 },
    } })
    assert.same({ type = "array", items = { type = "string", maxLength = 50 }, maxItems = 20, minItems = 0,
      uniqueItems = true, default = {} }, o.properties.tags)
    assert.equal(schema.array_mt, getmetatable(o.properties.tags.default))
    assert.same({ type = "integer", minimum = 1, maximum = 100, default = 20 }, o.properties.limit)
    assert.same({ type = "number", minimum = 0.5 }, o.properties.ratio)
    assert.same({ type = "integer" }, o.additionalProperties)
    assert.is_nil(o.required)
  end)

  it("raises on an invalid schema", function()
    assert.has_error(function() schema.to_openapi({ type = "string", maxlength = 3 }) end,
      "schema.to_openapi: invalid schema: schema: unknown keyword 'maxlength'")
  end)
end)
