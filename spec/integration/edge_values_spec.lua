-- Values at the edge of what the API can carry, against a live server:
--   * JSON (RFC 8259): a raw control character inside a string is
--     400 invalid_json (in a key or a value, U+0000..U+001F, tab and newline
--     included), and so is one between tokens other than tab, LF, CR; tab,
--     LF and CR between tokens stay fine, and escaped control characters in
--     strings round-trip;
--   * dueDate: any RFC 3339 offset (up to +-23:59, beyond PostgreSQL's
--     +-15:59) round-trips as the same instant in UTC; an instant outside
--     0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z (which the API's
--     four-digit years cannot express) is 422 on create and update and 400
--     as dueBefore/dueAfter, never 500.
local h = require "spec.integration.helper"
local T = require "spec.integration.support.tasks"

local ECHO = "/api/v1/__test/echo"

describe("JSON bodies", function()
  it("refuse a raw control character inside a string with 400 invalid_json", function()
    for _, c in ipairs({ 0, 1, 8, 9, 10, 13, 27, 31 }) do
      local ch = string.char(c)
      for _, body in ipairs({ '{"a":"x' .. ch .. 'y"}', '{"k' .. ch .. '":1}', '{"a":["ok","' .. ch .. '"]}' }) do
        local e = h.expect_error(h.call("POST", ECHO, { body = body }), 400, "invalid_json")
        assert.truthy(e.message:find("control character", 1, true), e.message)
      end
    end
  end)

  it("refuse control characters other than tab, LF and CR between tokens", function()
    for _, c in ipairs({ 0, 1, 11, 12, 31 }) do
      h.expect_error(h.call("POST", ECHO, { body = '{"a":' .. string.char(c) .. '1}' }), 400, "invalid_json")
    end
  end)

  it("accept tab, LF and CR between tokens and escaped control characters in strings", function()
    local res = h.call("POST", ECHO, { body = '{\r\n\t"a" :\t"x\\ty\\n\\u0001",\n "b": [1,\r\n2]\n}\n' })
    local body = h.expect_status(res, 200)
    assert.are.equal("x\ty\n\1", body.data.a)
    assert.are.same({ 1, 2 }, body.data.b)
  end)
end)

describe("dueDate", function()
  local owner, project

  setup(function()
    owner = T.user("Due Owner")
    project = T.project(owner)
  end)

  local ROUND_TRIPS = {
    { "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z" },
    { "9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59.000Z" },
    { "9999-12-31T10:00:00-13:59", "9999-12-31T23:59:00.000Z" },
    { "2026-06-01T00:00:00-23:59", "2026-06-01T23:59:00.000Z" },
    { "2026-06-01T12:00:00+23:59", "2026-05-31T12:01:00.000Z" },
    { "2026-06-01T12:00:00+16:00", "2026-05-31T20:00:00.000Z" },
    { "2026-06-01T12:00:00-15:59", "2026-06-02T03:59:00.000Z" },
    { "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z" },
    { "0001-01-01T23:00:00+23:00", "0001-01-01T00:00:00.000Z" },
    { "0001-01-01", "0001-01-01T00:00:00.000Z" },
    { "9999-12-31", "9999-12-31T00:00:00.000Z" },
    { "2024-02-29T23:30:00-01:00", "2024-03-01T00:30:00.000Z" },
    { "1969-12-31T23:59:59.9994Z", "1969-12-31T23:59:59.999Z" },
    { "2026-01-01T00:00:00.0005Z", "2026-01-01T00:00:00.001Z" },
  }

  it("round-trips every RFC 3339 offset as the same instant in UTC", function()
    for _, c in ipairs(ROUND_TRIPS) do
      local t = T.create(owner.access, project, { title = "due " .. c[1], dueDate = c[1] })
      assert.are.equal(c[2], t.dueDate, c[1])
      local again = h.expect_status(T.call("GET", "/tasks/" .. t.id, owner.access), 200).data
      assert.are.equal(c[2], again.dueDate, c[1])
      -- and the value that came back is accepted as it is
      local t2 = T.create(owner.access, project, { title = "again", dueDate = again.dueDate })
      assert.are.equal(c[2], t2.dueDate)
    end
  end)

  local OUT_OF_RANGE = {
    "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.9995Z",
    "0001-01-01T00:00:00+00:01", "0001-01-01T10:00:00+23:59", "0001-01-01T00:00:00.000+01:00",
  }

  it("is 422 for an instant the API cannot express, on create and on update", function()
    local t = T.create(owner.access, project, { title = "to update", dueDate = "2026-01-01" })
    for _, v in ipairs(OUT_OF_RANGE) do
      h.expect_validation(T.create_res(owner.access, project, { title = "x", dueDate = v }), { "dueDate" })
      h.expect_validation(T.call("PATCH", "/tasks/" .. t.id, owner.access, { dueDate = v }), { "dueDate" })
    end
    local still = h.expect_status(T.call("GET", "/tasks/" .. t.id, owner.access), 200).data
    assert.are.equal("2026-01-01T00:00:00.000Z", still.dueDate)
  end)

  it("is 422 for years before 1 (the four-digit year 0000)", function()
    h.expect_validation(T.create_res(owner.access, project, { title = "x", dueDate = "0000-12-31T23:00:00Z" }),
      { "dueDate" })
  end)

  it("filters with dueBefore/dueAfter at any offset; out of range is 400", function()
    local t = T.create(owner.access, project, { title = "filter", dueDate = "2030-01-01T12:00:00Z" })
    local function ids(params)
      params.projectId = project
      local b = h.expect_status(T.call("GET", "/tasks" .. T.query(params), owner.access), 200)
      local set = {}
      for _, x in ipairs(b.data) do
        set[x.id] = true
      end
      return set
    end
    assert.is_true(ids({ dueBefore = "2030-01-01T00:00:01-12:00" })[t.id] == true)
    assert.is_nil(ids({ dueBefore = "2030-01-01T23:59:00+23:59" })[t.id])
    assert.is_true(ids({ dueAfter = "2030-01-01T23:59:00+23:59" })[t.id] == true)
    for _, k in ipairs({ "dueBefore", "dueAfter" }) do
      local res = T.call("GET", "/tasks" .. T.query({ projectId = project, [k] = "9999-12-31T23:59:59-23:59" }),
        owner.access)
      local e = h.expect_error(res, 400, "invalid_parameter")
      assert.are.equal(k, e.details[1].field)
    end
  end)
end)
