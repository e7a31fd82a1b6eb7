-- Idempotency-Key on POST (API.md §1): a retry with the same key, user and
-- body within 24 h replays the first answer (same status and body, header
-- Idempotent-Replayed: true) and changes nothing; the same key with another
-- body is a 422; two concurrent requests with one key execute once.
local h = require "spec.integration.helper"

local function count_projects(owner_id, name)
  return tonumber(h.psql(("SELECT count(*) FROM projects WHERE owner_id = %s AND name = %s")
    :format(h.sql_literal(owner_id), h.sql_literal(name))))
end

describe("Idempotency-Key", function()
  local u

  setup(function()
    u = h.session()
  end)

  local function create(name, key, extra)
    local body = { name = name }
    for k, v in pairs(extra or {}) do
      body[k] = v
    end
    return h.call("POST", "/api/v1/projects", { token = u.access, body = body,
      headers = { ["Idempotency-Key"] = key } })
  end

  it("replays the first answer for a retry and changes nothing", function()
    local name, key = "idem " .. h.random_word(10), "key-" .. h.random_word(10)
    local first = create(name, key)
    h.expect_status(first, 201)
    assert.is_nil(first.headers["idempotent-replayed"])
    local again = create(name, key)
    h.expect_status(again, 201)
    assert.are.equal("true", again.headers["idempotent-replayed"])
    assert.are.equal(first.raw, again.raw)
    assert.are.equal(1, count_projects(u.user.id, name))
  end)

  it("answers 422 for the same key with a different body", function()
    local key = "key-" .. h.random_word(10)
    h.expect_status(create("one " .. h.random_word(10), key), 201)
    local res = create("two " .. h.random_word(10), key)
    h.expect_error(res, 422, "validation_failed")
  end)

  it("keeps keys per user: another user's same key runs anew", function()
    local key, name = "key-" .. h.random_word(10), "shared " .. h.random_word(10)
    h.expect_status(create(name, key), 201)
    local other = h.session()
    local res = h.call("POST", "/api/v1/projects", { token = other.access, body = { name = name },
      headers = { ["Idempotency-Key"] = key } })
    h.expect_status(res, 201)
    assert.is_nil(res.headers["idempotent-replayed"])
    assert.are.equal(1, count_projects(other.user.id, name))
  end)

  it("replays error answers too (4xx), without running the handler again", function()
    local key = "key-" .. h.random_word(10)
    local first = h.call("POST", "/api/v1/projects", { token = u.access, body = { name = "" },
      headers = { ["Idempotency-Key"] = key } })
    h.expect_error(first, 422, "validation_failed")
    local again = h.call("POST", "/api/v1/projects", { token = u.access, body = { name = "" },
      headers = { ["Idempotency-Key"] = key } })
    h.expect_error(again, 422, "validation_failed")
    assert.are.equal("true", again.headers["idempotent-replayed"])
    assert.are.equal(first.raw, again.raw)
  end)

  it("executes once when two requests with one key arrive together", function()
    local name, key = "race " .. h.random_word(10), "key-" .. h.random_word(10)
    local results = h.parallel(4, "POST", "/api/v1/projects", { token = u.access,
      body = { name = name }, headers = { ["Idempotency-Key"] = key } })
    local ids = {}
    for _, r in ipairs(results) do
      assert.are.equal(201, r.status, r.raw)
      ids[r.body.data.id] = true
    end
    local n = 0
    for _ in pairs(ids) do
      n = n + 1
    end
    assert.are.equal(1, n, "every answer names the same project")
    assert.are.equal(1, count_projects(u.user.id, name))
  end)

  it("rejects a malformed key with 400 invalid_parameter", function()
    local res = create("bad key " .. h.random_word(10), string.rep("k", 256))
    h.expect_error(res, 400, "invalid_parameter")
    res = create("bad key " .. h.random_word(10), "tab\there")
    h.expect_error(res, 400, "invalid_parameter")
  end)

  it("ignores the header on requests without a user (login is never replayed)", function()
    local res = h.call("POST", "/api/v1/auth/login", { body = { email = u.email, password = u.password },
      headers = { ["Idempotency-Key"] = "login-key" } })
    h.expect_status(res, 200)
    local again = h.call("POST", "/api/v1/auth/login", { body = { email = u.email, password = u.password },
      headers = { ["Idempotency-Key"] = "login-key" } })
    h.expect_status(again, 200)
    assert.is_nil(again.headers["idempotent-replayed"])
    assert.are_not.equal(res.body.data.refreshToken, again.body.data.refreshToken)
  end)
end)
