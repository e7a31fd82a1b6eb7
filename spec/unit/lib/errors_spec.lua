-- Unit specs for scripts/lib/errors.lua: HTTP error values, raising them,
-- every shorthand's status/code/default message, and the response body shape.
-- luacheck: std lua54+busted

local errors = require("lib.errors")

-- Calls fn and returns the error value it raised (fails if it returned).
local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

describe("errors.new / errors.is", function()
  it("builds an error value with its four fields", function()
    local d = { { field = "a", message = "bad" } }
    local e = errors.new(418, "teapot", "short and stout", d)
    assert.equal(418, e.status)
    assert.equal("teapot", e.code)
    assert.equal("short and stout", e.message)
    assert.equal(d, e.details)
  end)

  it("recognises its own values only", function()
    assert.is_true(errors.is(errors.new(400, "x", "y")))
    assert.is_false(errors.is({ status = 400, code = "x", message = "y" }))
    assert.is_false(errors.is("400 x: y"))
    assert.is_false(errors.is(nil))
    assert.is_false(errors.is(setmetatable({}, { __name = "http.error" })))
  end)

  it("has a readable tostring", function()
    assert.equal("404 not_found: gone", tostring(errors.new(404, "not_found", "gone")))
  end)
end)

describe("errors.raise", function()
  it("raises the error value itself, without position information", function()
    local e = raised(errors.raise, 409, "conflict", "taken", { { field = "email", message = "taken" } })
    assert.is_true(errors.is(e))
    assert.equal(409, e.status)
    assert.equal("conflict", e.code)
    assert.equal("taken", e.message)
    assert.same({ { field = "email", message = "taken" } }, e.details)
  end)

  it("can be caught and re-raised unchanged", function()
    local first = raised(errors.raise, 400, "bad", "bad")
    local again = raised(error, first)
    assert.equal(first, again)
  end)
end)

describe("shorthands", function()
  local cases = {
    { "not_found", 404, "not_found", "no such resource" },
    { "unauthorized", 401, "unauthorized", "authentication required" },
    { "forbidden", 403, "forbidden", "not allowed" },
    { "conflict", 409, "conflict", "conflict" },
    { "unavailable", 503, "unavailable", "a dependency is unavailable" },
  }

  for _, c in ipairs(cases) do
    local name, status, code, default = c[1], c[2], c[3], c[4]

    it(name .. " raises " .. status .. " " .. code .. " with a default message", function()
      local e = raised(errors[name])
      assert.is_true(errors.is(e))
      assert.equal(status, e.status)
      assert.equal(code, e.code)
      assert.equal(default, e.message)
      assert.is_nil(e.details)
    end)

    it(name .. " takes a custom message", function()
      assert.equal("custom", raised(errors[name], "custom").message)
    end)
  end

  it("conflict takes a custom code", function()
    local e = raised(errors.conflict, "email taken", "email_taken")
    assert.equal(409, e.status)
    assert.equal("email_taken", e.code)
    assert.equal("email taken", e.message)
  end)

  it("validation raises 422 validation_failed with the details", function()
    local d = { { field = "title", message = "is required" }, { field = "x", message = "is not allowed" } }
    local e = raised(errors.validation, d)
    assert.equal(422, e.status)
    assert.equal("validation_failed", e.code)
    assert.equal("request validation failed", e.message)
    assert.equal(d, e.details)
    assert.equal("nope", raised(errors.validation, d, "nope").message)
  end)

  it("field raises 422 with one detail", function()
    local e = raised(errors.field, "due_date", "must be in the future")
    assert.equal(422, e.status)
    assert.equal("validation_failed", e.code)
    assert.same({ { field = "due_date", message = "must be in the future" } }, e.details)
  end)
end)

describe("errors.body", function()
  it("has code and message, and no details key when there are none", function()
    local b = errors.body(errors.new(404, "not_found", "gone"))
    assert.same({ error = { code = "not_found", message = "gone" } }, b)
    local has_details = false
    for k in pairs(b.error) do
      if k == "details" then has_details = true end
    end
    assert.is_false(has_details)
    assert.is_nil(b.status)
    assert.is_nil(b.error.status)
  end)

  it("includes details when present", function()
    local d = { { field = "a", message = "b" } }
    assert.same({ error = { code = "validation_failed", message = "m", details = d } },
      errors.body(errors.new(422, "validation_failed", "m", d)))
  end)
end)
